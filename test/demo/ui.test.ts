// The demo's output: colour and a progress display on a terminal, plain numbered lines anywhere else.
import assert from 'node:assert/strict';
import { Ui } from '../../examples/demo/ui';

/** A stand-in for process.stdout that records what is written. */
function fakeOut(isTTY: boolean): { stream: NodeJS.WriteStream; text(): string } {
  let text = '';
  const stream = {
    isTTY,
    write(chunk: string | Uint8Array): boolean {
      text += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString();
      return true;
    },
  } as unknown as NodeJS.WriteStream;
  return { stream, text: () => text };
}

function withEnv(vars: Record<string, string | undefined>, f: () => void): void {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  for (const [k, v] of Object.entries(vars)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  try {
    f();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

function runSteps(ui: Ui): void {
  const s = ui.step('ping each backend');
  s.progress('backend1');
  s.progress('backend2');
  s.ok('3/3 answered');
  ui.detail('Chain FORWARD (policy DROP 0 packets, 0 bytes)');
  ui.step('port 8080').fail('answered');
  ui.close();
}

describe('demo output (examples/demo/ui.ts)', () => {
  it('without a terminal: one plain line per event, no escape sequences, no progress text', () => {
    const out = fakeOut(false);
    runSteps(new Ui(out.stream));
    assert.equal(
      out.text(),
      '[1] ping each backend ...\n[1] ping each backend: ok: 3/3 answered\n' +
        '      Chain FORWARD (policy DROP 0 packets, 0 bytes)\n' +
        '[2] port 8080 ...\n[2] port 8080: FAILED: answered\n',
    );
  });

  it('on a terminal: colour, a spinner line redrawn in place with the progress text, a mark per result', () => {
    withEnv({ NO_COLOR: undefined, TERM: 'xterm-256color' }, () => {
      const out = fakeOut(true);
      const ui = new Ui(out.stream);
      assert.equal(ui.tty, true);
      runSteps(ui);
      const t = out.text();
      assert.match(t, /\r\x1b\[2K\x1b\[36m.\x1b\[0m \[1\] ping each backend\x1b\[2m {2}backend2\x1b\[0m/, 'progress redrawn in place');
      assert.match(t, /\x1b\[32m✓\x1b\[0m \[1\] ping each backend: 3\/3 answered\n/);
      assert.match(t, /\x1b\[31m✗\x1b\[0m \[2\] port 8080: answered\n/);
      assert.doesNotMatch(t, /: ok: |FAILED/, 'terminal output uses marks, not words');
    });
  });

  it('on a terminal with NO_COLOR or TERM=dumb: plain lines', () => {
    for (const env of [{ NO_COLOR: '1', TERM: 'xterm' }, { NO_COLOR: undefined, TERM: 'dumb' }]) {
      withEnv(env, () => {
        const out = fakeOut(true);
        const ui = new Ui(out.stream);
        assert.equal(ui.tty, false, JSON.stringify(env));
        runSteps(ui);
        assert.doesNotMatch(out.text(), /\x1b\[/);
      });
    }
  });
});
