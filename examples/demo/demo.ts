// `npm run demo`: nfqwall filtering a small routed network, built in network namespaces and torn down afterwards.
//
// A client, a node that routes and runs `nfqwall run`, and three backends running HTTP servers. The ruleset
// (examples/demo/forward.rules) lets HTTP through, drops (and logs) one port, rejects another, and the demo shows
// each of those from the client's side, then the counters, the status, and a change of the rule file taking effect.
//
// Then the kube-proxy scenario (examples/demo/kube-proxy.rules, in the shape kube-proxy's iptables mode writes): the
// client calls a ClusterIP that nfqwall DNATs to one of the three backends at random, bound on the connection's first
// packet and translated both ways after that; the same client calling from an address outside the cluster CIDR is
// MASQUERADEd on its way to the backend; the NodePort answers on the node's address; the service with no endpoints is
// refused at once. The demo shows `nfqwall list -v` and `/metrics`, then scales the service to four backends by editing
// the rule file and reloading while requests keep flowing, and counts the requests that failed (none should).
// Scenarios are a list; one that `nfqwall run` would refuse is skipped, and the demo prints the refusal.
//
// Options: --keep leaves the lab up until Ctrl-C and prints how to poke at it; --quick sends fewer requests.
// Ctrl-C at any moment removes everything (namespaces, processes, temporary files).
import fs from 'node:fs';
import path from 'node:path';
import { checkEnforceable } from '../../src/rules/enforce';
import { RuleErrors } from '../../src/rules/errors';
import { loadRuleFile } from '../../src/rules/load';
import { cliPath, Daemon, packageRoot, scratchDir, sleep } from '../../test/lab/daemon';
import { isRoot, Lab, type Host } from '../../test/lab/lab';
import { ping } from '../../test/lab/traffic';
import { httpRequests, startServer, type HttpResult } from './http';
import { BACKENDS, CLIENT, CLUSTER_IP, demoLabSpec, EMPTY_SERVICE_IP, NODE_CLIENT_SIDE, NODE_PORT, OUTSIDE_CLIENT, PORTS, SPARE } from './topology';
import { Ui } from './ui';

const NODE = process.execPath;
/** How long the client waits on the blocked port before it gives up (a dropped SYN gets no answer at all). */
const BLOCKED_WAIT_MS = 2_000;
const LOG_PREFIX = 'demo-blocked: ';
/** Where `nfqwall run` serves /metrics by default: loopback of the node's own namespace. */
const METRICS_URL = 'http://127.0.0.1:9469/metrics';

interface Options {
  keep: boolean;
  requests: number;
}

/** What the demo found, for the summary line. Every field starts pessimistic. */
interface Findings {
  ping: number;
  answered: number;
  blocked: 'dropped' | 'answered' | 'refused' | 'error';
  rejected: 'refused' | 'timed out' | 'answered' | 'error';
  rejectedMs?: number;
  logLines: number;
  counters: boolean;
  reopen: { how: 'reload' | 'restart'; ok: boolean };
  kubeProxy: 'skipped' | 'ok' | 'failed';
  /** Requests per backend to the ClusterIP, `backend1 9, backend2 9, backend3 12`. */
  spread?: string;
  masquerade: 'skipped' | 'ok' | 'failed';
  nodePort: 'skipped' | 'ok' | 'failed';
  noEndpoints: 'skipped' | 'refused' | 'timed out' | 'answered' | 'error';
  /** The service scaled to four backends by a reload while requests flowed. */
  scale: { state: 'skipped' | 'ok' | 'failed'; spare: number; failed: number };
  /** `nfqwall list -v` printed its chains with counters. */
  list: boolean;
  /** /metrics answered with the nfqwall_* series the demo looks for. */
  metrics: boolean;
  problems: string[];
}

interface Ctx {
  ui: Ui;
  lab: Lab;
  opts: Options;
  rulesFile: string;
  /** The copy of examples/demo/kube-proxy.rules the kube-proxy scenario runs and edits. */
  kubeRulesFile: string;
  control: string;
  daemon: Daemon;
  findings: Findings;
  commands: Set<string>;
}

interface Scenario {
  name: string;
  /** Undefined when it can run; otherwise why not (shown, not an error). */
  notReady(): string | undefined;
  run(ctx: Ctx): Promise<void>;
}

function parseArgs(argv: string[]): Options {
  const opts: Options = { keep: false, requests: 10 };
  for (const a of argv) {
    if (a === '--keep') opts.keep = true;
    else if (a === '--quick') opts.requests = 3;
    else if (a === '-h' || a === '--help') {
      process.stdout.write(
        'usage: npm run demo [-- --keep] [-- --quick]\n' +
          '  --keep   leave the lab running (until Ctrl-C) and print how to poke at it\n' +
          '  --quick  fewer requests per backend\n',
      );
      process.exit(0);
    } else {
      process.stderr.write(`demo: unknown option ${a} (try --help)\n`);
      process.exit(2);
    }
  }
  return opts;
}

function demoFile(name: string): string {
  return path.join(packageRoot(), 'examples', 'demo', name);
}

async function nfqwall(host: Host, args: string[], check = true): Promise<{ code: number; stdout: string; stderr: string }> {
  return host.exec([NODE, cliPath(), ...args], { check, timeoutMs: 15_000 });
}

/** The subcommands this build of nfqwall has (list, reload, ... arrive while the demo already exists). */
async function cliCommands(host: Host): Promise<Set<string>> {
  const r = await nfqwall(host, ['--help']);
  const cmds = new Set<string>();
  let inCommands = false;
  for (const line of r.stdout.split('\n')) {
    if (/^Commands:/.test(line)) inCommands = true;
    else if (inCommands) {
      const m = /^ {2}([a-z][a-z0-9-]*)/.exec(line);
      if (m?.[1] !== undefined) cmds.add(m[1]);
    }
  }
  return cmds;
}

function tally(results: HttpResult[], name: string): { ok: number; wrong: number } {
  let ok = 0;
  let wrong = 0;
  for (const r of results) {
    if (r.ok && r.body === name) ok++;
    else if (r.ok) wrong++;
  }
  return { ok, wrong };
}

function outcome(r: HttpResult | undefined): string {
  if (r === undefined) return 'no result';
  if (r.ok) return `answered by ${r.body ?? '?'} in ${r.ms} ms`;
  if (r.error === 'ECONNREFUSED') return `refused after ${r.ms} ms`;
  if (r.error === 'timeout') return `no answer, gave up after ${r.ms} ms`;
  return `${r.error ?? 'error'} after ${r.ms} ms`;
}

/** The `Chain NAME ...` blocks of `iptables -L` style output for the chains named, in the order given. */
function chainBlocks(list: string, chains: readonly string[]): string[] {
  const blocks = list.split(/\n(?=Chain )/).map((b) => b.replace(/\n+$/, ''));
  return chains.map((c) => blocks.find((b) => b.startsWith(`Chain ${c} (`))).filter((b): b is string => b !== undefined);
}

/** Prints `nfqwall list -v -t TABLE` of the running daemon, only the chains that matter; true when all were there. */
async function listExcerpt(ctx: Ctx, table: string, chains: readonly string[]): Promise<boolean> {
  const r = await nfqwall(ctx.lab.host('node'), ['list', '-v', '-t', table, '--control', ctx.control], false);
  if (r.code !== 0) {
    ctx.ui.detail(`nfqwall list: exit ${r.code}: ${r.stderr.trim()}`);
    return false;
  }
  const blocks = chainBlocks(r.stdout, chains);
  ctx.ui.detail(`$ nfqwall list -v -t ${table} --control ...   (chains ${chains.join(', ')})\n${blocks.join('\n\n')}`);
  return blocks.length === chains.length;
}

/** The series of an exposition text the demo shows: name{labels} value lines, no # HELP / # TYPE. */
function metricsExcerpt(text: string, wanted: readonly RegExp[]): string[] {
  return text.split('\n').filter((l) => !l.startsWith('#') && wanted.some((w) => w.test(l)));
}

/** The value of the first series line matching `pattern`, or -1. */
function metricValue(lines: readonly string[], pattern: RegExp): number {
  const line = lines.find((l) => pattern.test(l));
  const v = line === undefined ? NaN : Number(line.slice(line.lastIndexOf(' ') + 1));
  return Number.isFinite(v) ? v : -1;
}

function ruleCounter(save: string, pattern: RegExp): number {
  const line = save.split('\n').find((l) => pattern.test(l));
  const m = line === undefined ? null : /^\[(\d+):\d+\]/.exec(line);
  return m ? Number(m[1]) : -1;
}

const filterScenario: Scenario = {
  name: 'stateless filtering of forwarded traffic (examples/demo/forward.rules)',
  notReady: () => undefined,
  async run(ctx: Ctx): Promise<void> {
    const { ui, lab, findings: f } = ctx;
    const client = lab.host('client');
    const node = lab.host('node');

    let s = ui.step('ping each backend through the node');
    let got = 0;
    for (const b of BACKENDS) {
      s.progress(`${b.name} ${b.addr}`);
      if ((await ping(client, b.addr, 1, { waitS: 1 })) === 1) got++;
    }
    f.ping = got;
    (got === BACKENDS.length ? s.ok : s.fail)(`${got}/${BACKENDS.length} answered`);

    s = ui.step(`HTTP: ${ctx.opts.requests} requests to each backend, port ${PORTS.http}`);
    const perBackend: string[] = [];
    for (const b of BACKENDS) {
      const results = await httpRequests(client, b.addr, PORTS.http, ctx.opts.requests, 3_000, (_r, i) =>
        s.progress(`${b.name}: ${i + 1}/${ctx.opts.requests}`),
      );
      const t = tally(results, b.name);
      if (t.ok === ctx.opts.requests) f.answered++;
      else f.problems.push(`${b.name}: ${t.ok}/${ctx.opts.requests} answered (${outcome(results.find((r) => !r.ok || r.body !== b.name))})`);
      const fastest = Math.min(...results.map((r) => r.ms));
      perBackend.push(`${b.name} ${t.ok}/${ctx.opts.requests}${t.ok > 0 ? ` (fastest ${fastest} ms)` : ''}`);
    }
    (f.answered === BACKENDS.length ? s.ok : s.fail)(perBackend.join(', '));

    const target = BACKENDS[0]!;
    s = ui.step(`port ${PORTS.blocked} (blocked: LOG + DROP) on ${target.name}`);
    s.progress(`waiting up to ${BLOCKED_WAIT_MS / 1000} s for an answer that should not come`);
    const [blocked] = await httpRequests(client, target.addr, PORTS.blocked, 1, BLOCKED_WAIT_MS);
    f.blocked = blocked?.error === 'timeout' ? 'dropped' : blocked?.ok ? 'answered' : blocked?.error === 'ECONNREFUSED' ? 'refused' : 'error';
    (f.blocked === 'dropped' ? s.ok : s.fail)(`${outcome(blocked)}${f.blocked === 'dropped' ? ': dropped, as the rules say' : ''}`);

    s = ui.step(`port ${PORTS.rejected} (REJECT --reject-with tcp-reset) on ${target.name}`);
    const [rejected] = await httpRequests(client, target.addr, PORTS.rejected, 1, BLOCKED_WAIT_MS);
    f.rejected =
      rejected?.error === 'ECONNREFUSED' ? 'refused' : rejected?.error === 'timeout' ? 'timed out' : rejected?.ok ? 'answered' : 'error';
    if (rejected !== undefined) f.rejectedMs = rejected.ms;
    (f.rejected === 'refused' ? s.ok : s.fail)(
      `${outcome(rejected)}${f.rejected === 'refused' ? ': nfqwall sent the client a TCP reset' : ''}`,
    );

    s = ui.step(`LOG lines nfqwall printed for port ${PORTS.blocked}`);
    // The daemon prints LOG records on its stdout as the kernel would write them to the kernel log.
    let logs: string[] = [];
    for (let i = 0; i < 10; i++) {
      logs = ctx.daemon.output.split('\n').filter((l) => l.includes(LOG_PREFIX));
      if (logs.length > 0) break;
      await sleep(100);
    }
    f.logLines = logs.length;
    (logs.length > 0 ? s.ok : s.fail)(`${logs.length} line${logs.length === 1 ? '' : 's'} (the SYN and its retransmissions, at most 5 a minute)`);
    if (logs.length > 0) ui.detail(logs.slice(0, 3).join('\n'));

    s = ui.step('counters: nfqwall list -v --control  (FORWARD and blocked, as iptables -L -v prints them)');
    const save = (await nfqwall(node, ['save', '-c', '--control', ctx.control])).stdout;
    const http = ruleCounter(save, /--dport 80 .*-j ACCEPT/);
    const drop = ruleCounter(save, /^\[\d+:\d+\] -A blocked -j DROP/);
    const reject = ruleCounter(save, /-j REJECT/);
    const listed = await listExcerpt(ctx, 'filter', ['FORWARD', 'blocked']);
    f.list = listed;
    f.counters = http >= BACKENDS.length * ctx.opts.requests && drop >= 1 && reject >= 1 && listed;
    (f.counters ? s.ok : s.fail)(`http rule ${http} packets, blocked DROP ${drop}, REJECT ${reject}`);
    if (!f.counters) f.problems.push(`counters: http ${http}, drop ${drop}, reject ${reject}${listed ? '' : ', nfqwall list -v failed'}`);

    s = ui.step('nfqwall status');
    const st = await ctx.daemon.status();
    const q = st.queues[0];
    const pk = (st as { packets?: Record<string, number> }).packets ?? {};
    s.ok(
      q === undefined
        ? 'no queue in the status'
        : `queue ${q.queue}: ${q.received} packets received, ${q.accepted} accepted, ${q.dropped} dropped, ` +
            `${String(q['overload'] ?? 0)} over capacity, kernel queue drops ${String(q['kernelQueueDropped'] ?? 0)}`,
    );
    const extra = Object.entries(pk)
      .filter(([, v]) => typeof v === 'number' && v > 0)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
    if (extra !== '') ui.detail(`engine: ${extra}`);

    await reopenBlockedPort(ctx);
  },
};

/** Edits the rule file so port 8080 is accepted, and makes nfqwall take it: `nfqwall reload` if it has one. */
async function reopenBlockedPort(ctx: Ctx): Promise<void> {
  const { ui, lab, findings: f } = ctx;
  const node = lab.host('node');
  const client = lab.host('client');
  const before = fs.readFileSync(ctx.rulesFile, 'utf8');
  const edited = before.replace(/^(-A FORWARD -p tcp -m tcp --dport 8080) -j blocked$/m, '$1 -j ACCEPT');
  if (edited === before) throw new Error(`${ctx.rulesFile}: the --dport 8080 rule to edit is not there`);
  fs.writeFileSync(ctx.rulesFile, edited);
  ui.line(ui.dim(`      edited ${ctx.rulesFile}: -A FORWARD -p tcp -m tcp --dport 8080 -j ACCEPT`));

  const canReload = ctx.commands.has('reload');
  f.reopen.how = canReload ? 'reload' : 'restart';
  let s = ui.step(canReload ? 'nfqwall reload (the daemon keeps running)' : 'restart nfqwall with the edited file');
  if (canReload) {
    const pid = (await ctx.daemon.status())['pid'];
    const httpRule = /--dport 80 .*-j ACCEPT/;
    const countBefore = ruleCounter((await nfqwall(node, ['save', '-c', '--control', ctx.control])).stdout, httpRule);
    const r = await nfqwall(node, ['reload', '--control', ctx.control], false);
    const after = (await ctx.daemon.status())['pid'];
    const countAfter = ruleCounter((await nfqwall(node, ['save', '-c', '--control', ctx.control])).stdout, httpRule);
    if (r.code !== 0) {
      s.fail(`nfqwall reload: exit ${r.code}: ${r.stderr.trim()}`);
      f.problems.push(`reload failed: ${r.stderr.trim()}`);
    } else if (pid !== after) {
      s.fail(`the daemon's pid changed (${String(pid)} -> ${String(after)})`);
      f.problems.push('reload restarted the daemon');
    } else {
      s.ok(`${r.stdout.trim() || 'reloaded'} (same process, pid ${String(pid)})`);
      ui.detail(`http rule counter: ${countBefore} packets before the reload, ${countAfter} after (counters follow the rule)`);
    }
  } else {
    // Without reload, the counters start again from zero: that is the cost reload (in progress) removes.
    s.progress('SIGTERM, then nfqwall run again');
    const end = await ctx.daemon.stop('SIGTERM');
    if (end.code !== 0) f.problems.push(`nfqwall exited ${String(end.code ?? end.signal)} on SIGTERM`);
    ctx.daemon = await Daemon.start(node, ctx.control, { rules: ctx.rulesFile });
    s.ok('restarted (this build has no `nfqwall reload` yet; counters start again from zero)');
  }

  const target = BACKENDS[0]!;
  s = ui.step(`port ${PORTS.blocked} on ${target.name} again`);
  const [again] = await httpRequests(client, target.addr, PORTS.blocked, 1, BLOCKED_WAIT_MS);
  const ok = again?.ok === true && again.body === target.name;
  f.reopen.ok = ok && !f.problems.some((p) => /reload/.test(p));
  (ok ? s.ok : s.fail)(outcome(again));
}

/** Ready when `nfqwall run` would accept the file; otherwise the reason it gives (the demo prints it). */
function enforceProblem(file: string): string | undefined {
  try {
    checkEnforceable(loadRuleFile(file, 4));
    return undefined;
  } catch (err) {
    if (err instanceof RuleErrors) {
      const first = err.errors[0];
      const reason = first === undefined ? err.message : first.reason;
      return `${reason}${err.errors.length > 1 ? ` (and ${err.errors.length - 1} more)` : ''}`;
    }
    throw err;
  }
}

/** Requests per backend name (answers only). */
function spreadOf(results: readonly HttpResult[]): Map<string, number> {
  const by = new Map<string, number>();
  for (const r of results) if (r.ok && r.body !== undefined) by.set(r.body, (by.get(r.body) ?? 0) + 1);
  return by;
}

function spreadText(by: ReadonlyMap<string, number>, names: readonly string[]): string {
  return names.map((n) => `${n} ${by.get(n) ?? 0}`).join(', ');
}

/**
 * kube-proxy.rules as kube-proxy would rewrite it when the service gains a fourth endpoint: a KUBE-SEP chain for
 * backend4, and the KUBE-SVC chain's random split over four (1/4, then 1/3 of the rest, then 1/2, then the last).
 */
function scaledToFour(text: string): string {
  const sep = (n: number, addr: string): string =>
    `-A KUBE-SEP-BACKEND${n} -s ${addr}/32 -m comment --comment "demo/web:http" -j KUBE-MARK-MASQ\n` +
    `-A KUBE-SEP-BACKEND${n} -p tcp -m comment --comment "demo/web:http" -m tcp -j DNAT --to-destination ${addr}:80\n`;
  const svc = (addr: string, n: number, p?: string): string =>
    `-A KUBE-SVC-DEMO -m comment --comment "demo/web:http -> ${addr}:80"` +
    (p === undefined ? '' : ` -m statistic --mode random --probability ${p}`) +
    ` -j KUBE-SEP-BACKEND${n}\n`;
  const all = [...BACKENDS, SPARE];
  const probabilities = ['0.25000000000', '0.33333333349', '0.50000000000'];
  const steps: [RegExp, string][] = [
    [/^:KUBE-SEP-BACKEND3 - \[0:0\]\n/m, ':KUBE-SEP-BACKEND3 - [0:0]\n:KUBE-SEP-BACKEND4 - [0:0]\n'],
    [/^-A KUBE-SEP-BACKEND3 -p tcp .*\n/m, `$&${sep(4, SPARE.addr)}`],
    [/(^-A KUBE-SVC-DEMO -m comment --comment "demo\/web:http -> .*\n)+/m, all.map((b, i) => svc(b.addr, i + 1, probabilities[i])).join('')],
  ];
  let out = text;
  for (const [re, by] of steps) {
    if (!re.test(out)) throw new Error(`kube-proxy.rules: nothing matches ${re.source} (the demo edits that part)`);
    out = out.replace(re, by);
  }
  return out;
}

/** Writes `text` to `file` as an editor's save-as would: a new file renamed over the old one. */
function replaceFile(file: string, text: string): void {
  const tmp = `${file}.new`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

const kubeProxyScenario: Scenario = {
  name: 'kube-proxy: a ClusterIP load-balanced over the backends (examples/demo/kube-proxy.rules)',
  notReady: () => enforceProblem(demoFile('kube-proxy.rules')),
  async run(ctx: Ctx): Promise<void> {
    const { ui, lab, findings: f } = ctx;
    const node = lab.host('node');
    const client = lab.host('client');
    const names = backendNames();
    const n = 30;
    let s = ui.step('restart nfqwall with the kube-proxy rules');
    await ctx.daemon.stop('SIGTERM');
    ctx.daemon = await Daemon.start(node, ctx.control, { rules: ctx.kubeRulesFile });
    s.ok(`running ${ctx.kubeRulesFile}`);

    // 30 requests: the chance that the random split leaves a backend without one is about 1 in 60 000.
    s = ui.step(`${n} requests from the client to the ClusterIP ${CLUSTER_IP}:80 (DNAT, -m statistic --mode random)`);
    const results = await httpRequests(client, CLUSTER_IP, 80, n, 3_000, (_r, i) => s.progress(`${i + 1}/${n}`));
    const by = spreadOf(results);
    const answered = [...by.values()].reduce((a, b) => a + b, 0);
    f.spread = spreadText(by, names);
    // The client is inside 198.18.0.0/16, which the rules exempt from MASQUERADE: the backends see it as it is.
    const notKept = results.filter((r) => r.ok && r.peer !== CLIENT);
    const ok = answered === n && BACKENDS.every((b) => (by.get(b.name) ?? 0) > 0) && notKept.length === 0;
    f.kubeProxy = ok ? 'ok' : 'failed';
    if (answered !== n || !ok) f.problems.push(`kube-proxy: ${answered}/${n} answered (${f.spread})`);
    if (notKept.length > 0) f.problems.push(`kube-proxy: a backend saw the client as ${String(notKept[0]?.peer)}, not ${CLIENT}`);
    (ok ? s.ok : s.fail)(`${answered}/${n} answered: ${f.spread}; every backend saw the client's own address`);

    // From outside the cluster CIDR 198.18.0.0/16, KUBE-SVC-DEMO sends the connection to KUBE-MARK-MASQ, and
    // KUBE-POSTROUTING MASQUERADEs it: each backend sees the node's address on its own link, not the client's.
    const masqueraded = (results: readonly HttpResult[]): { good: number; how: string } => {
      const seen = new Map<string, number>();
      let good = 0;
      for (const r of results) {
        if (!r.ok) continue;
        const idx = BACKENDS.findIndex((b) => b.name === r.body);
        const key = `${r.body ?? '?'} saw ${r.peer ?? '?'}`;
        seen.set(key, (seen.get(key) ?? 0) + 1);
        if (idx >= 0 && r.peer === `198.19.${idx + 1}.1`) good++;
      }
      return { good, how: [...seen.entries()].map(([k, v]) => `${k} x${v}`).join(', ') };
    };
    const m = 12;
    s = ui.step(`${m} requests from ${OUTSIDE_CLIENT} (outside 198.18.0.0/16) to the ClusterIP: MASQUERADE`);
    const fromOutside = await httpRequests(client, CLUSTER_IP, 80, m, 3_000, (_r, i) => s.progress(`${i + 1}/${m}`), OUTSIDE_CLIENT);
    const mq = masqueraded(fromOutside);
    f.masquerade = mq.good === m ? 'ok' : 'failed';
    if (mq.good !== m) f.problems.push(`masquerade: ${mq.good}/${m} requests arrived from the node's address (${mq.how || outcome(fromOutside.find((r) => !r.ok))})`);
    (mq.good === m ? s.ok : s.fail)(`${mq.good}/${m} arrived from the node's address: ${mq.how || outcome(fromOutside[0])}`);

    // The NodePort: the node's own address, port 30080. KUBE-SERVICES' last rule (-m addrtype --dst-type LOCAL) sends
    // it to KUBE-NODEPORTS, KUBE-EXT-DEMO marks it for MASQUERADE and hands it to the same KUBE-SVC-DEMO.
    s = ui.step(`${m} requests to the NodePort ${NODE_CLIENT_SIDE}:${NODE_PORT} (the node's own address)`);
    const viaNodePort = await httpRequests(client, NODE_CLIENT_SIDE, NODE_PORT, m, 3_000, (_r, i) => s.progress(`${i + 1}/${m}`));
    const np = masqueraded(viaNodePort);
    f.nodePort = np.good === m ? 'ok' : 'failed';
    if (np.good !== m) f.problems.push(`nodeport: ${np.good}/${m} answered through the node (${np.how || outcome(viaNodePort.find((r) => !r.ok))})`);
    (np.good === m ? s.ok : s.fail)(`${np.good}/${m} answered by a backend, which saw the node's address: ${spreadText(spreadOf(viaNodePort), names)}`);

    s = ui.step(`the service with no endpoints, ${EMPTY_SERVICE_IP}:80 (REJECT in filter KUBE-SERVICES)`);
    const [empty] = await httpRequests(client, EMPTY_SERVICE_IP, 80, 1, BLOCKED_WAIT_MS);
    f.noEndpoints =
      empty?.error === 'ECONNREFUSED' ? 'refused' : empty?.error === 'timeout' ? 'timed out' : empty?.ok ? 'answered' : 'error';
    const fast = empty !== undefined && empty.ms < 1_000;
    if (f.noEndpoints !== 'refused' || !fast) f.problems.push(`no endpoints: ${outcome(empty)}`);
    (f.noEndpoints === 'refused' && fast ? s.ok : s.fail)(
      `${outcome(empty)}${f.noEndpoints === 'refused' ? ': nfqwall answered with ICMP port unreachable' : ''}`,
    );

    if (ctx.commands.has('conntrack')) {
      s = ui.step('nfqwall conntrack -L --control  (the connections, with their NAT bindings)');
      const r = await nfqwall(node, ['conntrack', '-L', '--control', ctx.control], false);
      if (r.code === 0) {
        const lines = r.stdout.split('\n').filter((l) => l.trim() !== '');
        const entries = lines.filter((l) => new RegExp(`dst=${CLUSTER_IP.replace(/\./g, '\\.')}`).test(l));
        s.ok(`${lines.length} lines, ${entries.length} of them to the ClusterIP; one DNATed, one also MASQUERADEd:`);
        // The reply tuple shows the binding: the chosen backend as its source, the node's address as its destination.
        const sample = [CLIENT, OUTSIDE_CLIENT].map((src) => entries.find((l) => l.includes(`src=${src} `)));
        ui.detail(sample.filter((l): l is string => l !== undefined).join('\n'));
      } else s.fail(r.stderr.trim());
    }

    s = ui.step('counters: nfqwall list -v --control  (the chains that matter)');
    const natListed = await listExcerpt(ctx, 'nat', ['KUBE-NODEPORTS', 'KUBE-SVC-DEMO']);
    const filterListed = await listExcerpt(ctx, 'filter', ['KUBE-SERVICES']);
    f.list = f.list && natListed && filterListed;
    (natListed && filterListed ? s.ok : s.fail)('each endpoint rule counts the connections it took (first packets only: the nat table sees no others)');
    if (!natListed || !filterListed) f.problems.push('nfqwall list -v: chains missing from its output');

    await scaleToFour(ctx);
    await showMetrics(ctx);
  },
};

/** Edits the rule file (a fourth backend) and reloads while a stream of requests runs; none may fail. */
async function scaleToFour(ctx: Ctx): Promise<void> {
  const { ui, lab, findings: f } = ctx;
  const node = lab.host('node');
  const count = 100;
  const pauseMs = 20;
  const reloadAfter = 10;
  const edited = scaledToFour(fs.readFileSync(ctx.kubeRulesFile, 'utf8'));
  const s = ui.step(`scale demo/web to four backends: edit the rule file and reload during ${count} requests`);
  let done = 0;
  let reloadFrom = -1;
  let reloadedAt = -1;
  let reload: Promise<{ code: number; stdout: string; stderr: string }> | undefined;
  const results = await httpRequests(
    lab.host('client'),
    CLUSTER_IP,
    80,
    count,
    3_000,
    (_r, i) => {
      done = i + 1;
      s.progress(`${done}/${count}${reloadedAt >= 0 ? ', reloaded' : reload !== undefined ? ', reloading' : ''}`);
      if (done === reloadAfter && reload === undefined) {
        reloadFrom = done;
        replaceFile(ctx.kubeRulesFile, edited);
        reload = nfqwall(node, ['reload', '--control', ctx.control], false).then((r) => {
          reloadedAt = done;
          return r;
        });
      }
    },
    undefined,
    pauseMs,
  );
  const r = reload === undefined ? undefined : await reload;
  ui.detail(
    `edited ${ctx.kubeRulesFile}: + KUBE-SEP-BACKEND4 (DNAT to ${SPARE.addr}:80), KUBE-SVC-DEMO split 1/4, 1/3, 1/2, rest\n` +
      `$ nfqwall reload --control ${ctx.control}\n${r === undefined ? '(not run)' : (r.stdout + r.stderr).trim()}`,
  );
  const failed = results.filter((x) => !x.ok);
  const before = spreadOf(results.slice(0, reloadFrom));
  const after = spreadOf(results.slice(Math.max(reloadedAt, 0)));
  const spareBefore = before.get(SPARE.name) ?? 0;
  f.scale = { state: 'failed', spare: results.filter((x) => x.ok && x.body === SPARE.name).length, failed: failed.length };
  const why: string[] = [];
  if (r === undefined || r.code !== 0) why.push(`nfqwall reload: ${r === undefined ? 'not run' : `exit ${r.code}: ${r.stderr.trim()}`}`);
  if (failed.length > 0) why.push(`${failed.length} requests failed (${outcome(failed[0])})`);
  if (spareBefore > 0) why.push(`${SPARE.name} answered before the reload`);
  if (reloadedAt < 0 || reloadedAt >= count) why.push('the reload finished after the last request');
  else if ((after.get(SPARE.name) ?? 0) === 0) why.push(`${SPARE.name} got none of the ${count - reloadedAt} requests after the reload`);
  if (why.length === 0) f.scale.state = 'ok';
  else f.problems.push(`scale to four: ${why.join('; ')}`);
  const all = [...backendNames(), SPARE.name];
  (why.length === 0 ? s.ok : s.fail)(
    `${count - failed.length}/${count} answered, ${failed.length} failed; before the reload: ${spreadText(before, all)}; ` +
      `after it: ${spreadText(after, all)}`,
  );
}

function backendNames(): string[] {
  return BACKENDS.map((b) => b.name);
}

/** A few nfqwall_* series of the daemon's Prometheus endpoint, fetched from inside the node. */
async function showMetrics(ctx: Ctx): Promise<void> {
  const { ui, lab, findings: f } = ctx;
  const s = ui.step(`metrics: GET ${METRICS_URL}  (in the node; an excerpt)`);
  const fetchScript = `fetch(process.argv[1]).then((r) => r.text()).then((t) => process.stdout.write(t), (e) => { console.error(String(e.cause ?? e)); process.exit(1); })`;
  const r = await lab.host('node').exec([NODE, '-e', fetchScript, METRICS_URL], { check: false, timeoutMs: 10_000 });
  if (r.code !== 0) {
    s.fail(r.stderr.trim());
    f.problems.push(`metrics: ${r.stderr.trim()}`);
    return;
  }
  const lines = metricsExcerpt(r.stdout, [
    /^nfqwall_queue_received_total\{/,
    /^nfqwall_verdicts_total\{/,
    /^nfqwall_reject_replies_total\{result="sent"\}/,
    /^nfqwall_rule_packets_total\{.*chain="KUBE-SVC-DEMO"/,
    /^nfqwall_conntrack_entries /,
    /^nfqwall_config_reloads_total\{result="success"\}/,
  ]);
  const accepted = metricValue(lines, /^nfqwall_verdicts_total\{verdict="accept"\}/);
  const replies = metricValue(lines, /^nfqwall_reject_replies_total\{result="sent"\}/);
  const reloads = metricValue(lines, /^nfqwall_config_reloads_total\{result="success"\}/);
  const endpoints = lines.filter((l) => /chain="KUBE-SVC-DEMO"/.test(l)).length;
  f.metrics = accepted > 0 && replies >= 1 && reloads >= 1 && endpoints >= 4;
  if (!f.metrics) f.problems.push(`metrics: accept ${accepted}, reject replies ${replies}, reloads ${reloads}, KUBE-SVC-DEMO series ${endpoints}`);
  (f.metrics ? s.ok : s.fail)(`${r.stdout.split('\n').filter((l) => l.startsWith('nfqwall_')).length} nfqwall_* series; some of them:`);
  ui.detail(lines.join('\n'));
}

/** In the order they run; one whose rules nfqwall refuses says why and is skipped. */
const SCENARIOS: readonly Scenario[] = [filterScenario, kubeProxyScenario];

function summaryLine(f: Findings): string {
  const parts = [
    `backends ${f.answered}/${BACKENDS.length} answered`,
    `ping ${f.ping}/${BACKENDS.length}`,
    `blocked ${f.blocked}`,
    `rejected ${f.rejected}`,
    `counters ${f.counters ? 'ok' : 'wrong'}`,
    `${f.reopen.how} ${f.reopen.ok ? 'ok' : 'failed'}`,
    `kube-proxy ${f.kubeProxy}${f.spread !== undefined ? ` (${f.spread})` : ''}`,
    `masquerade ${f.masquerade}`,
    `nodeport ${f.nodePort}`,
    `no-endpoints ${f.noEndpoints}`,
    `scale-to-4 ${f.scale.state}${f.scale.state === 'skipped' ? '' : ` (backend4 ${f.scale.spare}, failed ${f.scale.failed})`}`,
    `list ${f.list ? 'ok' : 'failed'}`,
    `metrics ${f.metrics ? 'ok' : 'failed'}`,
  ];
  return `demo: ${parts.join(', ')}`;
}

function succeeded(f: Findings): boolean {
  return (
    f.answered === BACKENDS.length &&
    f.ping === BACKENDS.length &&
    f.blocked === 'dropped' &&
    f.rejected === 'refused' &&
    f.logLines > 0 &&
    f.counters &&
    f.reopen.ok &&
    f.kubeProxy !== 'failed' &&
    f.masquerade !== 'failed' &&
    f.nodePort !== 'failed' &&
    (f.noEndpoints === 'refused' || f.noEndpoints === 'skipped') &&
    f.scale.state !== 'failed' &&
    f.list &&
    (f.metrics || f.kubeProxy === 'skipped') &&
    f.problems.length === 0
  );
}

function hasCurl(): boolean {
  return (process.env['PATH'] ?? '').split(':').some((dir) => dir !== '' && fs.existsSync(path.join(dir, 'curl')));
}

function pokeHelp(ui: Ui, lab: Lab, ctx: Ctx): void {
  const ns = (h: string): string => lab.host(h).ns;
  const cli = `node ${path.relative(process.cwd(), cliPath()) || cliPath()}`;
  ui.heading('The lab is still up. From another terminal, as root:');
  // curl when the machine has it; otherwise the same request with Node's fetch, which is always there.
  const get = hasCurl()
    ? (url: string): string => `curl -sS -m 3 ${url}`
    : (url: string): string => `node -e 'fetch(process.argv[1]).then((r) => r.text()).then(console.log, (e) => console.log(e.cause?.code ?? e.message))' ${url}`;
  // After the kube-proxy scenario the daemon runs its rules (FORWARD policy DROP but for the service), not forward.rules.
  const kube = ctx.findings.kubeProxy !== 'skipped';
  const cmds = kube
    ? [
        `ip netns exec ${ns('client')} ${get(`http://${CLUSTER_IP}/`)}   # a backend, chosen at random`,
        `ip netns exec ${ns('client')} ${get(`http://${NODE_CLIENT_SIDE}:${NODE_PORT}/`)}   # the NodePort`,
        `ip netns exec ${ns('client')} ${get(`http://${EMPTY_SERVICE_IP}/`)}   # no endpoints: refused`,
        ...(hasCurl() ? [`ip netns exec ${ns('client')} curl --interface ${OUTSIDE_CLIENT} -sS -m 3 -D - http://${CLUSTER_IP}/   # MASQUERADEd: see x-peer`] : []),
        `ip netns exec ${ns('node')} ${cli} conntrack -L --control ${ctx.control}`,
        `ip netns exec ${ns('node')} ${cli} status --control ${ctx.control}`,
        `ip netns exec ${ns('node')} ${cli} list -v -t nat --control ${ctx.control}`,
        `ip netns exec ${ns('node')} ${get(METRICS_URL)}`,
        `ip netns exec ${ns('node')} ${cli} trace --control ${ctx.control} --src ${CLIENT} --dport 80   # then request the ClusterIP`,
        `ip netns exec ${ns('node')} iptables-save        # nfqwall's own hook rules (NFQWALL chains)`,
        `$EDITOR ${ctx.kubeRulesFile}   # the rule file the daemon runs; saving it reloads`,
      ]
    : [
        `ip netns exec ${ns('client')} ${get(`http://${BACKENDS[1]!.addr}/`)}`,
        `ip netns exec ${ns('client')} ${get(`http://${BACKENDS[0]!.addr}:${PORTS.rejected}/`)}   # refused`,
        `ip netns exec ${ns('client')} ping -c 2 ${BACKENDS[2]!.addr}`,
        `ip netns exec ${ns('node')} ${cli} status --control ${ctx.control}`,
        `ip netns exec ${ns('node')} ${cli} save -c --control ${ctx.control}`,
        `ip netns exec ${ns('node')} iptables-save        # nfqwall's own hook rules (NFQWALL chains)`,
        `$EDITOR ${ctx.rulesFile}   # the rule file the daemon runs`,
      ];
  for (const c of cmds) ui.line(`  ${c}`);
  ui.line();
  ui.line(`Press Ctrl-C here to remove the lab (namespaces ${lab.namespaces().join(' ')}).`);
  ui.line('If this process is killed with SIGKILL, remove them by hand:');
  ui.line(`  for ns in ${lab.namespaces().join(' ')}; do ip netns pids $ns | xargs -r kill; ip netns del $ns; done`);
}

async function main(): Promise<number> {
  const opts = parseArgs(process.argv.slice(2));
  const ui = new Ui(process.stdout, 0);
  ui.line(ui.bold('nfqwall demo') + ui.dim('  (a lab of network namespaces; nothing outside them is touched)'));
  if (!isRoot()) {
    ui.line(ui.red('demo: needs root (it creates network namespaces): run it as root, e.g. sudo npm run demo'));
    return 1;
  }
  try {
    cliPath();
  } catch (err) {
    ui.line(ui.red(`demo: ${err instanceof Error ? err.message : String(err)}`));
    return 1;
  }

  const scratch = scratchDir();
  let lab: Lab | undefined;
  let interrupted = false;
  let keepWaiting = false;
  // Registered before the lab hooks its own: this one runs first, says what happens, and exits (the lab's exit
  // handler then kills what runs in the namespaces and deletes them).
  const onSignal = (sig: NodeJS.Signals): void => {
    if (interrupted) return;
    interrupted = true;
    ui.close();
    process.stdout.write(`\n${sig === 'SIGINT' ? 'Ctrl-C' : sig}: removing the lab\n`);
    scratch.cleanup();
    process.exit(keepWaiting ? 0 : 130);
  };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, onSignal);
  process.on('exit', () => scratch.cleanup());

  const findings: Findings = {
    ping: 0,
    answered: 0,
    blocked: 'error',
    rejected: 'error',
    logLines: 0,
    counters: false,
    reopen: { how: 'restart', ok: false },
    kubeProxy: 'skipped',
    masquerade: 'skipped',
    nodePort: 'skipped',
    noEndpoints: 'skipped',
    scale: { state: 'skipped', spare: 0, failed: 0 },
    list: false,
    metrics: false,
    problems: [],
  };
  const t0 = Date.now();
  try {
    let s = ui.step(`build the lab: client, node (nfqwall), ${[...BACKENDS, SPARE].map((b) => b.name).join(', ')}`);
    lab = await Lab.create(demoLabSpec());
    s.ok(`namespaces ${lab.namespaces()[0]?.replace(/-client$/, '-*')}`);

    s = ui.step(`start HTTP servers on ${BACKENDS.length + 1} backends (ports ${Object.values(PORTS).join(', ')})`);
    for (const b of [...BACKENDS, SPARE]) {
      s.progress(b.name);
      await startServer(lab.host(b.name), b.name, b.addr, Object.values(PORTS));
    }
    s.ok(`each answers with its own name (${SPARE.name} waits for the service to scale)`);

    const node = lab.host('node');
    const rulesFile = scratch.write('forward.rules', fs.readFileSync(demoFile('forward.rules'), 'utf8'));
    s = ui.step('nfqwall check forward.rules');
    const check = await nfqwall(node, ['check', rulesFile], false);
    if (check.code !== 0) {
      s.fail(check.stderr.trim());
      return 1;
    }
    s.ok(check.stdout.trim().replace(`${rulesFile}: ok, `, ''));

    const control = path.join(scratch.dir, 'control.sock');
    s = ui.step('nfqwall run --rules forward.rules  (in the node)');
    const daemon = await Daemon.start(node, control, { rules: rulesFile });
    s.ok(`serving; hooks installed in the node's namespace only`);
    const kubeRulesFile = scratch.write('kube-proxy.rules', fs.readFileSync(demoFile('kube-proxy.rules'), 'utf8'));
    const ctx: Ctx = { ui, lab, opts, rulesFile, kubeRulesFile, control, daemon, findings, commands: await cliCommands(node) };

    for (const sc of SCENARIOS) {
      ui.heading(`Scenario: ${sc.name}`);
      const why = sc.notReady();
      if (why !== undefined) {
        ui.line(ui.yellow(`  skipped: nfqwall run would refuse its rules: ${why}`));
        continue;
      }
      await sc.run(ctx);
    }

    if (!opts.keep) {
      s = ui.step('clean up: stop nfqwall (it removes its hooks), delete the namespaces');
      const end = await ctx.daemon.stop('SIGTERM');
      await lab.destroy();
      if (end.code !== 0) findings.problems.push(`nfqwall exited ${String(end.code ?? end.signal)} on SIGTERM`);
      (end.code === 0 ? s.ok : s.fail)(`nfqwall exited ${String(end.code ?? end.signal)}; lab removed`);
    }

    ui.heading('Summary');
    const ok = succeeded(findings);
    ui.line(`  ${findings.answered}/${BACKENDS.length} backends answered every request; ping ${findings.ping}/${BACKENDS.length}`);
    ui.line(
      `  port ${PORTS.blocked}: ${findings.blocked} (${findings.logLines} LOG lines); port ${PORTS.rejected}: ${findings.rejected}` +
        (findings.rejectedMs !== undefined ? ` in ${findings.rejectedMs} ms` : ''),
    );
    ui.line(`  rule change: ${findings.reopen.how} ${findings.reopen.ok ? 'ok, port 8080 answers now' : 'FAILED'}`);
    ui.line(`  kube-proxy: ClusterIP ${findings.kubeProxy}${findings.spread !== undefined ? ` (${findings.spread})` : ''}, MASQUERADE ${findings.masquerade}`);
    ui.line(`  NodePort ${NODE_PORT}: ${findings.nodePort}; service with no endpoints: ${findings.noEndpoints}`);
    ui.line(
      `  scaled to four backends by a reload: ${findings.scale.state}` +
        (findings.scale.state === 'skipped' ? '' : ` (${SPARE.name} took ${findings.scale.spare} requests, ${findings.scale.failed} failed)`),
    );
    for (const p of findings.problems) ui.line(ui.red(`  problem: ${p}`));
    ui.line(ui.dim(`  ${((Date.now() - t0) / 1000).toFixed(1)} s`));
    if (opts.keep) {
      pokeHelp(ui, lab, ctx);
      keepWaiting = true;
      ui.line(summaryLine(findings));
      await new Promise<never>(() => undefined);
    }
    ui.line(summaryLine(findings));
    return ok ? 0 : 1;
  } catch (err) {
    ui.close();
    process.stdout.write(summaryLine(findings) + '\n');
    process.stderr.write(`demo: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return 1;
  } finally {
    ui.close();
    await lab?.destroy();
    scratch.cleanup();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`demo: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
