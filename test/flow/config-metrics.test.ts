// flow_cache in the configuration and on the command line, and the nfqwall_flow_cache_* metrics.
import assert from 'node:assert/strict';
import { applyOverrides, defaultConfig, parseConfig } from '../../src/config/config';
import { daemonOptions } from '../../src/cli/run';
import { Metrics, type FlowCacheCounts, type MetricsSource } from '../../src/daemon/metrics';
import { parseRuleset } from '../../src/rules/parse';

function value(text: string, name: string): number | undefined {
  const m = new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
  return m === null ? undefined : Number(m[2]);
}

describe('flow cache: configuration', () => {
  it('is on by default, `flow_cache = off` turns it off, and the daemon is told', () => {
    assert.equal(defaultConfig().flowCache, true);
    const off = parseConfig('flow_cache = off\n', '/etc/nfqwall/nfqwall.conf').config;
    assert.equal(off.flowCache, false);
    assert.equal(parseConfig('flow_cache = on\n', '/etc/nfqwall/nfqwall.conf').config.flowCache, true);
    assert.equal(daemonOptions({ ...off, rules: '/x.rules' }).flowCache, false);
    assert.equal(daemonOptions({ ...defaultConfig(), rules: '/x.rules' }).flowCache, true);
  });

  it('refuses a value that is not a boolean, naming the line', () => {
    assert.throws(() => parseConfig('\nflow_cache = sometimes\n', '/etc/nfqwall/nfqwall.conf'), /nfqwall\.conf:2:.*sometimes/);
  });

  it('--no-flow-cache overrides the file; no flag keeps the file', () => {
    assert.equal(applyOverrides(defaultConfig(), { flowCache: false }).flowCache, false);
    const off = parseConfig('flow_cache = off\n', '/etc/nfqwall/nfqwall.conf').config;
    assert.equal(applyOverrides(off, {}).flowCache, false);
  });
});

describe('flow cache: metrics', () => {
  const rules = parseRuleset('*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -p tcp -j ACCEPT\nCOMMIT\n', 't.rules');
  const rule = rules.tables.get('filter')!.chains.get('INPUT')!.rules[0]!;
  const base: MetricsSource = {
    startedAt: 0,
    rulesets: () => [rules],
    processor: () => ({ packets: 0, queued: 0, errors: 0, replies: 0, replyErrors: 0 }),
    queueStats: () => [],
    failOpen: () => false,
  };

  it('exports hits, misses, stores, uncacheable decisions, evictions, entries, trips skipped and counts between hooks cleared', async () => {
    const stats: FlowCacheCounts = { hits: 11, misses: 3, stores: 4, uncacheable: 8, evictions: 1, entries: 2, tripsSkipped: 7, transitsDropped: 5, transitsLapsed: 6 };
    const text = await new Metrics({ ...base, flowCache: () => stats }, 'test').text();
    assert.equal(value(text, 'nfqwall_flow_cache_hits_total'), 11);
    assert.equal(value(text, 'nfqwall_flow_cache_misses_total'), 3);
    assert.equal(value(text, 'nfqwall_flow_cache_stores_total'), 4);
    assert.equal(value(text, 'nfqwall_flow_cache_uncacheable_total'), 8);
    assert.equal(value(text, 'nfqwall_flow_cache_evictions_total'), 1);
    assert.equal(value(text, 'nfqwall_flow_cache_entries'), 2);
    assert.equal(value(text, 'nfqwall_flow_cache_trips_skipped_total'), 7);
    assert.equal(value(text, 'nfqwall_flow_cache_transits_dropped_total'), 5);
    assert.equal(value(text, 'nfqwall_flow_cache_transits_lapsed_total'), 6);
  });

  it('reads zero without a cache', async () => {
    const text = await new Metrics(base, 'test').text();
    assert.equal(value(text, 'nfqwall_flow_cache_entries'), 0);
    assert.equal(value(text, 'nfqwall_flow_cache_hits_total') ?? 0, 0);
  });

  it('drains the cache before reading rule counters', async () => {
    rule.counters.packets = 1;
    let drains = 0;
    const drainFlows = (): void => {
      drains++;
      rule.counters.packets += 5;
    };
    const text = await new Metrics({ ...base, drainFlows }, 'test').text();
    assert.equal(drains, 1);
    assert.equal(value(text, 'nfqwall_rule_packets_total'), 6);
  });
});
