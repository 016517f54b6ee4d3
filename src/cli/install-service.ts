// `nfqwall install-service`: installs systemd/nfqwall.service pointing at this copy of nfqwall, the nfqwall system
// user (sysusers.d), and a starting configuration that filters nothing until it is edited. Existing configuration
// and rule files are never overwritten; the unit is (it is ours). docs/systemd.md describes the layout.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { packageRoot } from '../package-root';

/** The paths written in systemd/nfqwall.service, replaced at install time. */
export const TEMPLATE_NODE = '/usr/bin/node';
export const TEMPLATE_CODE_DIR = '/usr/lib/nfqwall';
export const TEMPLATE_CONFIG_DIR = '/etc/nfqwall';

export interface InstallOptions {
  /** Root under which everything is installed and which the unit's paths include (default '/'). */
  prefix: string;
  /** Where the unit goes (default PREFIX/etc/systemd/system). */
  unitDir?: string;
  /** The nfqwall package the unit runs (default: the one running this command). */
  codeDir?: string;
  /** The node binary the unit runs (default: the one running this command). */
  node?: string;
  /** Skip creating the system user. */
  noUser?: boolean;
  /** Skip `systemctl daemon-reload`. */
  noReload?: boolean;
}

export type Action =
  | { kind: 'file'; path: string; mode: number; content: string; overwrite: boolean; why: string }
  | { kind: 'command'; argv: string[]; why: string };

const SYSUSERS = `# nfqwall's system user (systemd-sysusers). The unit also runs with DynamicUser=yes, which uses this user
# when it exists.
u nfqwall - "nfqwall packet filter" - -
`;

/** A configuration that changes nothing until edited: the rules file accepts everything. */
function starterConfig(): string {
  return `# nfqwall configuration, installed by \`nfqwall install-service\`. Every key is documented in
# examples/nfqwall.conf of the nfqwall sources. Relative paths resolve against this file's directory.
rules = rules.v4
# rules6 = rules.v6
fail_open = no
metrics = 127.0.0.1:9469
control = /run/nfqwall/control.sock
`;
}

function starterRules(): string {
  return `# nfqwall IPv4 rules (iptables-save format). This starter accepts everything; replace it with your rules,
# then \`systemctl reload nfqwall\` (a broken file is refused and the running rules stay).
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
COMMIT
`;
}

/** The unit text with the template's paths replaced by the installed ones. */
export function renderUnit(template: string, opts: { node: string; codeDir: string; configDir: string }): string {
  for (const [what, p] of [['node', opts.node], ['code directory', opts.codeDir], ['configuration directory', opts.configDir]]) {
    // systemd splits ExecStart= on whitespace and expands % and $: such paths would not survive.
    if (!path.isAbsolute(p!) || /[\s%$\\"']/.test(p!)) throw new Error(`${what} "${p}" must be an absolute path without spaces, quotes, %, $ or \\`);
  }
  return template
    .split(TEMPLATE_NODE + ' ').join(opts.node + ' ')
    .split(TEMPLATE_CODE_DIR + '/').join(opts.codeDir.replace(/\/+$/, '') + '/')
    .split(TEMPLATE_CONFIG_DIR + '/').join(opts.configDir.replace(/\/+$/, '') + '/');
}

/** What an install does, in order. Pure: reads only the unit template. */
export function planInstall(o: InstallOptions): Action[] {
  const prefix = path.resolve(o.prefix);
  const under = (p: string): string => path.join(prefix, p);
  const codeDir = path.resolve(o.codeDir ?? packageRoot());
  const node = o.node ?? process.execPath;
  const configDir = under(TEMPLATE_CONFIG_DIR);
  const unitDir = path.resolve(o.unitDir ?? under('/etc/systemd/system'));
  const templatePath = path.join(packageRoot(), 'systemd', 'nfqwall.service');
  const unit = renderUnit(fs.readFileSync(templatePath, 'utf8'), { node, codeDir, configDir });
  if (!fs.existsSync(path.join(codeDir, 'dist', 'src', 'cli', 'main.js'))) {
    throw new Error(`${codeDir}/dist/src/cli/main.js is missing: build nfqwall there first (npm run build)`);
  }
  const actions: Action[] = [
    { kind: 'file', path: path.join(unitDir, 'nfqwall.service'), mode: 0o644, content: unit, overwrite: true, why: 'the unit' },
    { kind: 'file', path: path.join(configDir, 'nfqwall.conf'), mode: 0o644, content: starterConfig(), overwrite: false, why: 'starter configuration' },
    { kind: 'file', path: path.join(configDir, 'rules.v4'), mode: 0o644, content: starterRules(), overwrite: false, why: 'starter rules (accept all)' },
    { kind: 'file', path: under('/usr/lib/sysusers.d/nfqwall.conf'), mode: 0o644, content: SYSUSERS, overwrite: true, why: 'the system user' },
  ];
  // Only a real install touches the machine's users and service manager; a prefix is a staging area.
  const real = prefix === '/';
  if (real && o.noUser !== true) {
    actions.push({ kind: 'command', argv: ['systemd-sysusers', under('/usr/lib/sysusers.d/nfqwall.conf')], why: 'create the nfqwall user' });
  }
  if (real && o.noReload !== true) {
    actions.push({ kind: 'command', argv: ['systemctl', 'daemon-reload'], why: 'make systemd read the unit' });
  }
  return actions;
}

/** Carries out a plan; returns one line per action taken or skipped. Throws on the first failure. */
export function applyPlan(actions: readonly Action[], dryRun: boolean): string[] {
  const out: string[] = [];
  for (const a of actions) {
    if (a.kind === 'file') {
      const exists = fs.existsSync(a.path);
      if (exists && !a.overwrite) {
        out.push(`keep ${a.path} (exists; ${a.why})`);
        continue;
      }
      if (dryRun) {
        out.push(`would write ${a.path} (${a.why}, ${Buffer.byteLength(a.content)} bytes, mode ${a.mode.toString(8)})`);
        continue;
      }
      fs.mkdirSync(path.dirname(a.path), { recursive: true, mode: 0o755 });
      const tmp = `${a.path}.nfqwall-${process.pid}.tmp`;
      fs.writeFileSync(tmp, a.content, { mode: a.mode });
      fs.chmodSync(tmp, a.mode);
      fs.renameSync(tmp, a.path);
      out.push(`wrote ${a.path} (${a.why})`);
    } else {
      if (dryRun) {
        out.push(`would run ${a.argv.join(' ')} (${a.why})`);
        continue;
      }
      const r = spawnSync(a.argv[0]!, a.argv.slice(1), { encoding: 'utf8', timeout: 60_000 });
      if (r.error || r.status !== 0) {
        const why = r.error?.message ?? (r.stderr.trim() || `exit ${r.status}`);
        throw new Error(`${a.argv.join(' ')}: ${why}`);
      }
      out.push(`ran ${a.argv.join(' ')} (${a.why})`);
    }
  }
  return out;
}

export function registerInstallService(program: Command): void {
  program
    .command('install-service')
    .description('install the systemd unit, the nfqwall user and a starter configuration (see docs/systemd.md)')
    .option('--prefix <dir>', 'install under DIR; the unit refers to DIR/etc/nfqwall (no user or daemon-reload unless /)', '/')
    .option('--unit-dir <dir>', 'directory for nfqwall.service (default PREFIX/etc/systemd/system)')
    .option('--code-dir <dir>', 'nfqwall package the unit runs (default: this one)')
    .option('--node <path>', 'node binary the unit runs (default: this one)')
    .option('--no-user', 'do not create the nfqwall user')
    .option('--no-reload', 'do not run systemctl daemon-reload')
    .option('--dry-run', 'print what would be done, change nothing')
    .action(
      (opts: { prefix: string; unitDir?: string; codeDir?: string; node?: string; user: boolean; reload: boolean; dryRun?: boolean }) => {
        try {
          const plan = planInstall({
            prefix: opts.prefix,
            unitDir: opts.unitDir,
            codeDir: opts.codeDir,
            node: opts.node,
            noUser: !opts.user,
            noReload: !opts.reload,
          });
          for (const line of applyPlan(plan, opts.dryRun === true)) process.stdout.write(line + '\n');
        } catch (err) {
          process.stderr.write(`nfqwall install-service: ${err instanceof Error ? err.message : String(err)}\n`);
          process.exitCode = 1;
        }
      },
    );
}
