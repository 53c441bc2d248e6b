// The Fleet view (#/fleet): fleet bundles and their rollouts (docs/fleet.md), from
// /api/v1/rollouts and /api/v1/agents. Each rollout with its phase, its waves, its agents by
// state and why any failed; then which bundles the agents run, and the agents not on the
// newest completed rollout (drift). All data is inserted as text, never as HTML.
'use strict';

window.PostwatchFleet = ({ $, h, api, fmtAgo }) => {
  const POLL_MS = 5000;
  const PHASE_CLASS = { running: 'amber', paused: 'unknown', complete: 'green', aborted: 'red' };
  const OUTCOME_WORDS = { applied: 'applied', on_trial: 'on trial', rolled_back: 'rolled back', refused: 'refused', none: 'none yet' };
  const TALLY_WORDS = { applied: 'applied their last bundle', on_trial: 'on trial', rolled_back: 'rolled their last bundle back',
                        refused: 'refused their last bundle', none: 'never had a bundle' };
  const OUTCOME_CLASS = { applied: 'green', on_trial: 'amber', rolled_back: 'red', refused: 'red', none: 'unknown' };
  const STATES = [['applied', 'green'], ['failed', 'red'], ['sent', 'amber'], ['waiting', 'unknown']];
  let timer = null;

  const pill = (cls, text) => h('span', { class: `pill status-${cls}` }, text);

  // One bar, a segment per state, as wide as its share of the rollout's agents.
  function progress(r) {
    const total = r.agents.length || 1;
    return h('div', { class: 'rollout-bar', role: 'img',
                      'aria-label': STATES.map(([s]) => `${r.counts[s]} ${s}`).join(', ') },
      STATES.filter(([s]) => r.counts[s] > 0).map(([s, cls]) => {
        const seg = h('span', { class: `seg status-${cls}`, title: `${r.counts[s]} ${s}` });
        seg.style.width = `${(100 * r.counts[s]) / total}%`;  // a property: the CSP refuses style attributes
        return seg;
      }));
  }

  function rolloutCard(r) {
    const wave = r.phase === 'running' || r.phase === 'paused'
      ? `wave ${r.wave + 1} of ${r.waves}${r.wave === 0 ? ' (canary)' : ''}` : `${r.waves} wave(s)`;
    const failed = r.agents.filter((a) => a.state === 'failed');
    return h('li', { class: 'rollout' },
      h('div', { class: 'rollout-head' },
        pill(PHASE_CLASS[r.phase] || 'unknown', r.phase),
        h('b', null, `v${r.version} → ${r.target}`),
        h('span', { class: 'muted' }, `${r.carries.join(' + ')} · ${wave} · started by ${r.created_by} ${fmtAgo(r.created_at_ms)}`)),
      r.note ? h('p', { class: 'rollout-note' }, r.note) : null,
      progress(r),
      h('p', { class: 'rollout-counts' },
        STATES.map(([s]) => `${r.counts[s]} ${s}`).join(' · '),
        ` · canary ${r.policy.canary_percent} %, waves of ${r.policy.wave_percent} %, stops above ${r.policy.max_failed_percent} % failed`),
      r.stop_reason ? h('p', { class: 'rollout-stop' }, `Stopped: ${r.stop_reason}`) : null,
      failed.length ? h('ul', { class: 'rollout-failed' },
        failed.map((a) => h('li', null, h('b', null, `${a.post}/${a.agent}`), ` ${a.reason || ''}`))) : null);
  }

  // Agents by the bundles they run, and those behind the newest completed rollout.
  function versions(agents, rollouts) {
    const groups = new Map();
    for (const a of agents) {
      const f = a.fleet;
      const key = `config ${f.config_bundle ? `v${f.config_bundle}` : 'the board\'s own'} · catalogue ${f.catalogue_bundle ? `v${f.catalogue_bundle}` : 'installed'} (catalogue_version ${f.catalogue_version})`;
      groups.set(key, (groups.get(key) || 0) + 1);
    }
    const done = rollouts.find((r) => r.phase === 'complete');
    const behind = done ? agents.filter((a) => {
      const f = a.fleet;
      return (done.carries.includes('config') && f.config_bundle < done.version)
          || (done.carries.includes('catalogue') && f.catalogue_bundle < done.version);
    }) : [];
    return [
      h('table', { class: 'fleet-versions' },
        h('thead', null, h('tr', null, h('th', null, 'runs'), h('th', null, 'agents'))),
        h('tbody', null, [...groups].sort((x, y) => y[1] - x[1]).map(([k, n]) => h('tr', null, h('td', null, k), h('td', null, String(n)))))),
      done ? h('p', { class: behind.length ? 'drift' : 'muted' },
        behind.length ? `${behind.length} agent(s) not on v${done.version}, the newest completed rollout: ${behind.map((a) => a.id).slice(0, 20).join(', ')}`
                      : `Every agent taking bundles runs v${done.version}, the newest completed rollout.`) : null,
      h('ul', { class: 'fleet-agents' },
        agents.filter((a) => a.fleet.last_outcome === 'rolled_back' || a.fleet.last_outcome === 'refused' || a.fleet.last_outcome === 'on_trial')
          .map((a) => h('li', null, pill(OUTCOME_CLASS[a.fleet.last_outcome], OUTCOME_WORDS[a.fleet.last_outcome]),
            ` ${a.id} v${a.fleet.last_version}${a.fleet.last_reason ? `: ${a.fleet.last_reason}` : ''}`))),
    ];
  }

  async function load() {
    try {
      const [ro, ag] = await Promise.all([api('/api/v1/rollouts'), api('/api/v1/agents')]);
      const agents = ag.agents.filter((a) => a.fleet);
      const counts = {};
      for (const a of agents) counts[a.fleet.last_outcome] = (counts[a.fleet.last_outcome] || 0) + 1;
      $('fleet-summary').replaceChildren(
        h('li', { class: 'tally' }, h('b', null, String(agents.length)), ' agents take bundles'),
        ...Object.keys(OUTCOME_WORDS).filter((o) => counts[o]).map((o) =>
          h('li', { class: `tally status-${OUTCOME_CLASS[o]}` }, h('b', null, String(counts[o])), ` ${TALLY_WORDS[o]}`)));
      $('fleet').replaceChildren(
        h('section', { class: 'fleet-panel' }, h('h3', null, 'Rollouts'),
          ro.rollouts.length ? h('ul', { class: 'rollouts' }, ro.rollouts.map(rolloutCard))
            : h('p', { class: 'muted' }, ro.enabled ? 'No rollout yet: sign a bundle with postwatch-fleet and POST it to /api/v1/rollouts (docs/fleet.md).'
                                                    : 'Rollouts are off: start the aggregator with --fleet-keys (docs/fleet.md).')),
        h('section', { class: 'fleet-panel' }, h('h3', null, 'What the agents run'),
          agents.length ? versions(agents, ro.rollouts) : h('p', { class: 'muted' }, 'No agent takes fleet bundles (fleet.key_file in its config).')));
    } catch (e) {
      $('fleet').replaceChildren(h('p', { class: 'error' }, `Cannot load the fleet: ${e.message}`));
    }
  }

  // Shows or hides the view; the live board's parts are hidden while it is shown.
  function show(on) {
    document.body.classList.toggle('fleet-mode', on);
    $('fleet-view').hidden = !on;
    clearInterval(timer);
    timer = null;
    if (on) {
      load();
      timer = setInterval(load, POLL_MS);
    }
  }

  return { show };
};
