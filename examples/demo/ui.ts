// What the demo prints: on a terminal, a numbered step with a live progress text, in colour; otherwise (a pipe, a
// log, a test) one plain line per event, so the output is easy to read back and to check.

export interface Step {
  /** Replaces the step's progress text (terminal only; plain output does not repeat progress). */
  progress(text: string): void;
  /** Closes the step as a success, with a short result. */
  ok(result: string): void;
  /** Closes the step as a failure (the demo goes on where it can). */
  fail(result: string): void;
}

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

export class Ui {
  readonly tty: boolean;
  private stepNo = 0;
  private live: { title: string; text: string; frame: number; timer: NodeJS.Timeout } | undefined;

  constructor(
    private readonly out: NodeJS.WriteStream = process.stdout,
    private readonly total = 0,
  ) {
    this.tty = out.isTTY === true && process.env['NO_COLOR'] === undefined && process.env['TERM'] !== 'dumb';
  }

  private paint(code: string, s: string): string {
    return this.tty ? `\x1b[${code}m${s}\x1b[0m` : s;
  }
  bold = (s: string): string => this.paint('1', s);
  dim = (s: string): string => this.paint('2', s);
  green = (s: string): string => this.paint('32', s);
  red = (s: string): string => this.paint('31', s);
  yellow = (s: string): string => this.paint('33', s);
  cyan = (s: string): string => this.paint('36', s);

  private clearLive(): void {
    if (this.live && this.tty) this.out.write('\r\x1b[2K');
  }

  private drawLive(): void {
    if (!this.live || !this.tty) return;
    const l = this.live;
    this.out.write(`\r\x1b[2K${this.cyan(SPINNER[l.frame % SPINNER.length] ?? '*')} ${l.title}${l.text ? this.dim(`  ${l.text}`) : ''}`);
  }

  /** A line of text outside any step (kept above the live step on a terminal). */
  line(text = ''): void {
    this.clearLive();
    this.out.write(`${text}\n`);
    this.drawLive();
  }

  /** Indented detail lines (command output, log lines). */
  detail(text: string): void {
    for (const l of text.replace(/\n+$/, '').split('\n')) this.line(`      ${this.dim(l)}`);
  }

  heading(text: string): void {
    this.line();
    this.line(this.bold(text));
  }

  step(title: string): Step {
    this.finishLive();
    this.stepNo++;
    const label = this.total > 0 ? `[${this.stepNo}/${this.total}]` : `[${this.stepNo}]`;
    const full = `${label} ${title}`;
    if (this.tty) {
      this.live = { title: full, text: '', frame: 0, timer: setInterval(() => this.tick(), 80) };
      this.drawLive();
    } else {
      this.out.write(`${full} ...\n`);
    }
    let closed = false;
    const close = (mark: string, result: string): void => {
      if (closed) return;
      closed = true;
      if (this.tty) {
        this.finishLive();
        this.out.write(`${mark} ${full}: ${result}\n`);
      } else {
        this.out.write(`${full}: ${mark === this.green('✓') ? 'ok' : 'FAILED'}: ${result}\n`);
      }
    };
    return {
      progress: (text: string) => {
        if (this.live && this.live.title === full) {
          this.live.text = text;
          this.drawLive();
        }
      },
      ok: (result: string) => close(this.green('✓'), result),
      fail: (result: string) => close(this.red('✗'), result),
    };
  }

  private tick(): void {
    if (!this.live) return;
    this.live.frame++;
    this.drawLive();
  }

  private finishLive(): void {
    if (!this.live) return;
    clearInterval(this.live.timer);
    this.clearLive();
    this.live = undefined;
  }

  /** Stops the spinner (before exit, or before printing something long). */
  close(): void {
    this.finishLive();
  }
}
