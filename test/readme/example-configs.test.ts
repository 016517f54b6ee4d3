// The three examples a new user starts from (a plain host firewall, a Docker host, a kube-proxy node): each is a
// configuration file and its rule file that run as they are. Here each configuration goes through the parser, each
// rule file through `nfqwall check` and the checks `nfqwall run` makes, and (as root) each configuration is started
// with `nfqwall run --config` in a lab namespace of its own and must come up serving its rules.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { loadConfigFile, type Config } from '../../src/config/config';
import { checkEnforceable } from '../../src/rules/enforce';
import { loadRuleFile } from '../../src/rules/load';
import { cliPath, kernelRules, scratchDir, sleep } from '../lab/daemon';
import { isRoot, Lab } from '../lab/lab';
import { packageRoot } from '../paths';
import { nfqwallArgv } from './docs';

const root = packageRoot();
const EXAMPLES = ['host-firewall', 'docker-host', 'kube-proxy-node'] as const;
const conf = (name: string): string => path.join(root, 'examples', `${name}.conf`);

function ruleFilesOf(c: Config): { file: string; family: 4 | 6 }[] {
  const out: { file: string; family: 4 | 6 }[] = [];
  if (c.rules !== undefined) out.push({ file: c.rules, family: 4 });
  if (c.rules6 !== undefined) out.push({ file: c.rules6, family: 6 });
  return out;
}

describe('examples: host firewall, Docker host, kube-proxy node', () => {
  it('every examples/*.conf is one of them, or nfqwall.conf (the reference of every key)', () => {
    const confs = fs.readdirSync(path.join(root, 'examples')).filter((n) => n.endsWith('.conf')).sort();
    assert.deepEqual(confs, [...EXAMPLES.map((e) => `${e}.conf`), 'nfqwall.conf'].sort());
  });

  for (const name of EXAMPLES) {
    describe(`examples/${name}.conf`, () => {
      it('parses, and names examples/NAME.rules beside it', () => {
        const { config } = loadConfigFile(conf(name));
        assert.equal(config.rules, path.join(root, 'examples', `${name}.rules`));
        for (const f of ruleFilesOf(config)) assert.ok(fs.existsSync(f.file), `${f.file} is missing`);
      });

      it('its rule files pass nfqwall check, and nfqwall run would enforce them', () => {
        const { config } = loadConfigFile(conf(name));
        const [node, ...pre] = nfqwallArgv();
        for (const f of ruleFilesOf(config)) {
          const rel = path.relative(root, f.file);
          const out = execFileSync(node!, [...pre, 'check', `-${f.family}`, rel], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
          assert.match(out, new RegExp(`^${rel.replace(/[.]/g, '\\.')}: ok, IPv${f.family}, \\d+ tables?, \\d+ chains, \\d+ rules\\n$`));
          assert.doesNotThrow(() => checkEnforceable(loadRuleFile(f.file, f.family)), rel);
        }
      });
    });
  }
});

interface StatusReply {
  failOpen?: boolean;
  rulesets?: { ipv4?: { sources?: string[]; rules?: number } };
}

describe('examples: each configuration comes up with nfqwall run --config, in a lab namespace', function () {
  this.timeout(60_000);

  before(function () {
    if (!isRoot()) {
      process.stderr.write('examples: skipping the lab runs: network namespaces need root\n');
      this.skip();
    }
  });

  for (const name of EXAMPLES) {
    it(`examples/${name}.conf`, async () => {
      const { config } = loadConfigFile(conf(name));
      const lab = await Lab.create({ hosts: [{ name: 'node' }], links: [] });
      const scratch = scratchDir();
      try {
        const host = lab.host('node');
        // As it is, but for the control socket: /run/nfqwall is shared by every namespace of the machine.
        const control = path.join(scratch.dir, 'control.sock');
        const child = host.spawn([process.execPath, cliPath(), 'run', '--config', conf(name), '--control', control]);
        let output = '';
        child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
        child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
        const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
        const cli = (args: string[]) => host.exec([process.execPath, cliPath(), ...args], { check: false, timeoutMs: 10_000 });

        let status: StatusReply | undefined;
        for (let i = 0; i < 100 && child.exitCode === null && status === undefined; i++) {
          const r = await cli(['status', '--control', control]);
          if (r.code === 0) status = JSON.parse(r.stdout) as StatusReply;
          else await sleep(150);
        }
        assert.ok(status, `nfqwall run --config examples/${name}.conf did not come up:\n${output}`);
        assert.deepEqual(status.rulesets?.ipv4?.sources, [config.rules]);
        assert.equal(status.failOpen, config.failOpen, 'fail_open of the file');

        const list = await cli(['list', '-v', '--control', control]);
        assert.equal(list.code, 0, list.stderr);
        assert.match(list.stdout, /^Chain INPUT \(policy (ACCEPT|DROP) \d+ packets, \d+ bytes\)$/m);

        // The metrics endpoint the file names answers inside the namespace.
        const listen = config.metrics;
        assert.ok(listen, 'the examples keep the metrics endpoint on');
        const url = `http://${listen.host}:${listen.port}/metrics`;
        const fetchScript = `fetch(process.argv[1]).then((r) => r.text()).then((t) => process.stdout.write(t), (e) => { console.error(String(e.cause ?? e)); process.exit(1); })`;
        const m = await host.exec([process.execPath, '-e', fetchScript, url], { check: false, timeoutMs: 10_000 });
        assert.equal(m.code, 0, m.stderr);
        assert.match(m.stdout, /^nfqwall_ruleset_rules\{family="ipv4",table="filter"\} [1-9]\d*$/m);
        assert.match(m.stdout, new RegExp(`^nfqwall_queue_fail_open\\{queue="0"\\} ${config.failOpen ? 1 : 0}$`, 'm'));

        child.kill('SIGTERM');
        assert.equal(await Promise.race([exited, sleep(10_000).then(() => 'timeout')]), 0, output);
        assert.doesNotMatch(await kernelRules(host), /NFQWALL/, 'hooks left behind after SIGTERM');
      } finally {
        await lab.destroy();
        scratch.cleanup();
      }
    });
  }
});
