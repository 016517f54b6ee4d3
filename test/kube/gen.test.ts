// scripts/gen-kube-proxy.ts writes what kube-proxy writes: its chain names, its rule shapes, rules nfqwall accepts,
// and rules the kernel loads and prints back exactly as `nfqwall save` prints them.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {
  generateServices,
  kubeHash,
  kubeProxyRules,
  kubeProxyRuleset,
  main,
  sepChain,
  svcChain,
  type KubeService,
} from '../../scripts/gen-kube-proxy';
import { cliPath, scratchDir } from '../lab/daemon';
import { Netns, whyNoKernel } from '../rules/netns';

function lines(text: string, re: RegExp): string[] {
  return text.split('\n').filter((l) => re.test(l));
}

function nfqwall(args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cliPath(), ...args], { encoding: 'utf8', maxBuffer: 1 << 28 });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

describe('scripts/gen-kube-proxy', () => {
  const scratch = scratchDir();
  after(() => scratch.cleanup());

  it("names chains with kube-proxy's hashes (the names in real kube-proxy rulesets)", () => {
    // From the corpus: 26-kubeadm-kube-proxy-random-fully-2025 and kube-proxy's own 01-kube-proxy-overall.
    const api: KubeService = {
      namespace: 'default', name: 'kubernetes', portName: 'https', protocol: 'tcp', clusterIP: '10.96.0.1', port: 443,
      endpoints: [{ ip: '192.168.20.100', port: 6443 }],
    };
    assert.equal(svcChain(api), 'KUBE-SVC-NPX46M4PTMTKRN6Y');
    assert.equal(sepChain(api, api.endpoints[0]!), 'KUBE-SEP-U7HH75UFG3U5VGYY');
    assert.equal(kubeHash('ns5/svc5:p80tcp'), 'NUKIZ6OKUXPJNT4C');
    assert.equal(kubeHash('ns5/svc5:p80tcp10.180.0.3:80'), 'I77PXRDZVX7PMWMN');
  });

  it('writes a service as kube-proxy does: portal, masquerade, probability cascade, affinity, endpoint DNAT', () => {
    const s: KubeService = {
      namespace: 'web', name: 'front', portName: 'http', protocol: 'tcp', clusterIP: '198.18.128.10', port: 80,
      nodePort: 30080, affinitySeconds: 600,
      endpoints: [1, 2, 3].map((k) => ({ ip: `198.19.${k}.2`, port: 8080 })),
    };
    const text = kubeProxyRuleset([s], { clusterCIDR: '198.19.0.0/16', randomFully: true });
    const svc = svcChain(s);
    const seps = s.endpoints.map((e) => sepChain(s, e));
    assert.deepEqual(lines(text, new RegExp(`^-A ${svc} `)), [
      `-A ${svc} -m comment --comment "web/front:http cluster IP" -m tcp -p tcp -d 198.18.128.10 --dport 80 ! -s 198.19.0.0/16 -j KUBE-MARK-MASQ`,
      ...s.endpoints.map((e, i) => `-A ${svc} -m comment --comment "web/front:http -> ${e.ip}:8080" -m recent --name ${seps[i]} --rcheck --seconds 600 --reap -j ${seps[i]}`),
      `-A ${svc} -m comment --comment "web/front:http -> 198.19.1.2:8080" -m statistic --mode random --probability 0.3333333333 -j ${seps[0]}`,
      `-A ${svc} -m comment --comment "web/front:http -> 198.19.2.2:8080" -m statistic --mode random --probability 0.5000000000 -j ${seps[1]}`,
      `-A ${svc} -m comment --comment "web/front:http -> 198.19.3.2:8080" -j ${seps[2]}`,
    ]);
    assert.deepEqual(lines(text, new RegExp(`^-A ${seps[1]} `)), [
      `-A ${seps[1]} -m comment --comment web/front:http -s 198.19.2.2 -j KUBE-MARK-MASQ`,
      `-A ${seps[1]} -m comment --comment web/front:http -m recent --name ${seps[1]} --set -m tcp -p tcp -j DNAT --to-destination 198.19.2.2:8080`,
    ]);
    assert.deepEqual(lines(text, /^-A KUBE-NODEPORTS /), [
      `-A KUBE-NODEPORTS -m comment --comment web/front:http -m tcp -p tcp --dport 30080 -j ${svc.replace('SVC', 'EXT')}`,
    ]);
    assert.deepEqual(lines(text, /MASQUERADE/), ['-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully']);
    assert.match(text.split('\n').filter((l) => l.startsWith('-A KUBE-SERVICES ')).pop() ?? '', /--dst-type LOCAL -j KUBE-NODEPORTS$/);
  });

  it('REJECTs a service without endpoints in filter, on its ClusterIP and on its NodePort', () => {
    const s: KubeService = {
      namespace: 'web', name: 'gone', portName: 'dns', protocol: 'udp', clusterIP: '198.18.128.14', port: 53, nodePort: 30053, endpoints: [],
    };
    const text = kubeProxyRuleset([s], { masqueradeAll: true });
    assert.deepEqual(lines(text, /-j REJECT/), [
      '-A KUBE-SERVICES -m comment --comment "web/gone:dns has no endpoints" -m udp -p udp -d 198.18.128.14 --dport 53 -j REJECT',
      '-A KUBE-EXTERNAL-SERVICES -m comment --comment "web/gone:dns has no endpoints" -m addrtype --dst-type LOCAL -m udp -p udp --dport 30053 -j REJECT',
    ]);
    assert.deepEqual(lines(text, /KUBE-SVC-|KUBE-SEP-|KUBE-EXT-/), [], 'no nat chains for a service without endpoints');
  });

  it('generates N services of M endpoints with every kind mixed in, each address once', () => {
    const list = generateServices(200, 4);
    assert.equal(list.length, 200);
    const withEp = list.filter((s) => s.endpoints.length > 0);
    assert.equal(list.length - withEp.length, 10, 'every 20th has no endpoints');
    assert.ok(withEp.every((s) => s.endpoints.length === 4));
    assert.equal(list.filter((s) => s.affinitySeconds === 10800).length, 25);
    assert.equal(list.filter((s) => s.protocol === 'udp').length, 20);
    assert.equal(list.filter((s) => s.nodePort !== undefined).length, 40);
    assert.ok(list.some((s) => s.endpoints.length === 0 && s.nodePort !== undefined), 'a NodePort without endpoints');
    assert.ok(list.some((s) => s.protocol === 'udp' && s.affinitySeconds !== undefined), 'a UDP service with affinity');
    const ips = [...list.map((s) => s.clusterIP), ...list.flatMap((s) => s.endpoints.map((e) => e.ip))];
    assert.equal(new Set(ips).size, ips.length);
    assert.ok(list.every((s) => s.clusterIP.startsWith('198.18.')) && withEp.every((s) => s.endpoints.every((e) => e.ip.startsWith('198.19.'))));

    const text = kubeProxyRules(200, 4);
    assert.equal(lines(text, /^:KUBE-SVC-/).length, 190);
    assert.equal(lines(text, /^:KUBE-SEP-/).length, 760);
    assert.equal(lines(text, /--probability 0\.2500000000 /).length, 190);
    assert.equal(lines(text, / --rcheck /).length, 4 * list.filter((s) => s.affinitySeconds !== undefined && s.endpoints.length > 0).length);
  });

  it('the CLI takes its options and refuses bad ones', () => {
    const text = main(['--services', '3', '--endpoints', '2', '--service-cidr', '198.18.128.0/24', '--pod-cidr', '198.19.1.0/24', '--random-fully']);
    assert.equal(lines(text, /^-A KUBE-SERVICES .* cluster IP/).length, 3);
    assert.deepEqual(lines(text, /-d 198\.18\.128\.\d+ --dport/).length, 6, 'portal and masquerade rule per service');
    assert.match(text, /! -s 198\.19\.1\.0\/24 -j KUBE-MARK-MASQ/);
    assert.match(text, /--to-destination 198\.19\.1\.6:8080/);
    assert.match(main(['--help']), /^usage: /);
    assert.throws(() => main(['--services', 'x']), /--services x: not a non-negative integer/);
    assert.throws(() => main(['--bogus']), /Unknown option '--bogus'/);
    assert.throws(() => main(['--services', '300', '--service-cidr', '198.18.0.0/24']), /198\.18\.0\.0\/24 has no room for 300 services/);
    assert.throws(() => main(['--services', '3000', '--node-port-every', '1', '--service-cidr', '198.18.0.0/20']), /more NodePort services than the 2768 ports/);
  });

  it('nfqwall check accepts the 10,000-service scenario', function () {
    this.timeout(120_000);
    const file = scratch.write('kube-10k.rules', kubeProxyRules(10_000, 3, { randomFully: true }));
    const r = nfqwall(['check', file]);
    assert.equal(r.stderr, '');
    assert.equal(r.status, 0);
    const m = /: ok, IPv4, 2 tables, (\d+) chains, (\d+) rules$/.exec(r.stdout.trim());
    assert.ok(m, r.stdout);
    // 9,500 services with endpoints: SVC + 3 SEP chains each; EXT for the 1,500 NodePorts among them (every 5th
    // service, less the 500 without endpoints, which are all NodePorts); 7 built-in and 11 fixed kube-proxy chains.
    assert.equal(Number(m[1]), 9_500 * 4 + 1_500 + 7 + 11);
  });

  describe('against the kernel (root)', () => {
    const ns = new Netns('kubegen');
    before(function () {
      const why = whyNoKernel();
      if (why) {
        process.stderr.write(`      skipped: ${why}\n`);
        this.skip();
      }
      ns.create();
    });
    after(() => ns.destroy());

    const cases: [string, () => string][] = [
      ['60 services x 3 endpoints, --random-fully', () => kubeProxyRules(60, 3, { randomFully: true })],
      ['25 services x 2 endpoints, many with affinity, UDP or none, masquerade-all, mark bit 10', () =>
        kubeProxyRuleset(generateServices(25, 2, { affinityEvery: 3, udpEvery: 4, noEndpointsEvery: 6 }), { masqueradeAll: true, masqueradeBit: 10 })],
      ['2,000 services x 5 endpoints', () => kubeProxyRules(2_000, 5)],
    ];
    for (const [name, gen] of cases) {
      it(`${name}: iptables-restore accepts it and iptables-save prints what nfqwall save prints`, function () {
        this.timeout(120_000);
        const text = gen();
        const file = scratch.write(`${name.replace(/\W+/g, '-')}.rules`, text);
        const restore = ns.restore(4, text);
        assert.equal(restore.status, 0, restore.stderr);
        const kernel = ns.exec(['iptables-save']).stdout.split('\n').filter((l) => !l.startsWith('#')).join('\n');
        const ours = nfqwall(['save', file]);
        assert.equal(ours.status, 0, ours.stderr);
        assert.equal(ours.stdout, kernel);
        assert.ok(lines(kernel, /^-A /).length > 50);
      });
    }
  });

  it('runs as a script', function () {
    // Under the compiled tree the script is dist/scripts/gen-kube-proxy.js; under tsx, the .ts through tsx.
    this.timeout(30_000);
    const here = path.join(__dirname, '..', '..', 'scripts');
    const js = path.join(here, 'gen-kube-proxy.js');
    const argv = fs.existsSync(js) ? [js] : ['--import', 'tsx', path.join(here, 'gen-kube-proxy.ts')];
    const out = execFileSync(process.execPath, [...argv, '--services', '4', '--endpoints', '2'], { encoding: 'utf8' });
    assert.equal(out, kubeProxyRules(4, 2));
  });
});
