// Operator actions on the dashboard: acknowledging an alarm, and silences and maintenance
// windows (docs/alerting.md): the panel that lists them, the dialog that sets one from an
// alarm, and ending one. app.js hands in what it shares (window.PostwatchOperator(ui)); all
// data is inserted as text, never as HTML.
'use strict';

window.PostwatchOperator = (ui) => {
  const { $, h, api, state } = ui;
  const OPERATOR_KEY = 'postwatch.operatorToken';
  const BY_KEY = 'postwatch.ackBy';
  let silences = [];  // active and pending, newest first

  const who = () => state.whoami || { auth: 'none', role: 'operator' };

  // The token and name rows of a dialog (prefix "ack" or "sil"), as the caller's role needs.
  function prepareRows(prefix) {
    const w = who();
    $(`${prefix}-error`).hidden = true;
    $(`${prefix}-token-row`).hidden = !(w.auth === 'token' && w.role !== 'operator') || !!state.operatorToken;
    $(`${prefix}-token`).value = '';
    $(`${prefix}-by-row`).hidden = w.auth !== 'none';
    $(`${prefix}-by`).value = sessionStorage.getItem(BY_KEY) || '';
  }

  function showError(prefix, text) {
    $(`${prefix}-error`).textContent = text;
    $(`${prefix}-error`).hidden = false;
  }

  // A change an operator makes: with the operator token (asked for in the dialog when the
  // page's token is read-only) and, without access control, the name typed in. Throws with
  // the message to show.
  async function operatorCall(prefix, path, method, body) {
    const w = who();
    let token = state.token;
    if (w.auth === 'token' && w.role !== 'operator') {
      const typed = $(`${prefix}-token`).value.trim();
      if (typed) {
        state.operatorToken = typed;
        sessionStorage.setItem(OPERATOR_KEY, typed);
      }
      token = state.operatorToken;
      if (!token) throw new Error('An operator token is needed for this.');
    }
    if (w.auth === 'none' && body) {
      body.by = $(`${prefix}-by`).value.trim();
      if (!body.by) throw new Error('Enter your name.');
      sessionStorage.setItem(BY_KEY, body.by);
    }
    try {
      return await api(path, {
        method, token, noPrompt: true, headers: body ? { 'Content-Type': 'application/json' } : {},
        body: body ? JSON.stringify(body) : undefined });
    } catch (e) {
      if ((e.status === 401 || e.status === 403) && w.role !== 'operator') {
        state.operatorToken = null;
        sessionStorage.removeItem(OPERATOR_KEY);
        $(`${prefix}-token-row`).hidden = false;
      }
      throw e;
    }
  }

  // ---------------------------------------------------------------- acknowledge

  let ackTarget = null;

  function openAck(a) {
    ackTarget = a;
    $('ack-text').textContent = `#${a.id} · ${ui.alarmTitle(a)} · ${a.level}`;
    $('ack-comment').value = '';
    prepareRows('ack');
    $('ack-dialog').showModal();
  }

  async function submitAck(ev) {
    ev.preventDefault();
    const body = {};
    const comment = $('ack-comment').value.trim();
    if (comment) body.comment = comment;
    try {
      const a = await operatorCall('ack', `/api/v1/alarms/${ackTarget.id}/ack`, 'POST', body);
      $('ack-dialog').close();
      ui.setAlarm(a);
    } catch (e) {
      showError('ack', e.message);
    }
  }

  // ---------------------------------------------------------------- silences

  // What a silence set from alarm `a` matches: its post, or its goal, or its kind.
  function matchFor(a) {
    if (a.kind === 'goal') return { kind: 'goal', goal: a.goal };
    if (a.post && a.kind !== 'topic_mismatch') return { post: a.post };
    return { kind: a.kind };
  }

  function describe(match) {
    const parts = [];
    for (const key of ['post', 'region', 'goal', 'pillar', 'kind', 'level']) {
      if (!match[key]) continue;
      const v = [].concat(match[key]);
      parts.push(`${key} ${v.join(', ')}`);
    }
    return parts.join(' · ');
  }

  let silenceTarget = null;

  function openSilence(a) {
    silenceTarget = matchFor(a);
    $('sil-text').textContent = `#${a.id} · ${ui.alarmTitle(a)}: hold notifications of ${describe(silenceTarget)}`;
    $('sil-maint-row').hidden = !silenceTarget.post;
    $('sil-maint').checked = false;
    $('sil-comment').value = '';
    prepareRows('sil');
    $('sil-dialog').showModal();
  }

  async function submitSilence(ev) {
    ev.preventDefault();
    const comment = $('sil-comment').value.trim();
    if (!comment) return showError('sil', 'Say why (the comment is kept with the silence).');
    const body = { match: silenceTarget, comment, duration_s: Number($('sil-duration').value) };
    if (!$('sil-maint-row').hidden && $('sil-maint').checked) body.maintenance = true;
    try {
      await operatorCall('sil', '/api/v1/silences', 'POST', body);
      $('sil-dialog').close();
      await refresh();
    } catch (e) {
      showError('sil', e.message);
    }
  }

  async function endSilence(s) {
    try {
      await operatorCall('sil', `/api/v1/silences/${s.id}`, 'DELETE', null);
      await refresh();
    } catch (e) {
      ui.notice(`Could not end silence #${s.id}: ${e.message}`);
    }
  }

  function fmtLeft(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 3600) return `${Math.max(1, Math.round(s / 60))} min`;
    if (s < 86400) return `${Math.round(s / 3600)} h`;
    return `${Math.round(s / 86400)} d`;
  }

  function render() {
    const now = Date.now();
    silences = silences.filter((s) => s.ends_at_ms > now && !s.ended_at_ms);  // over by its times
    $('silences').replaceChildren(...silences.map((s) =>
      h('li', { class: `silence${s.maintenance ? ' maintenance' : ''}`, id: `silence-${s.id}` },
        h('div', { class: 'silence-head' },
          h('span', { class: 'silence-kind' }, s.maintenance ? 'maintenance' : 'silence'),
          h('span', { class: 'silence-match' }, describe(s.match)),
          h('button', { type: 'button', class: 'end', title: 'End it now', onclick: () => endSilence(s) }, 'End')),
        h('div', { class: 'silence-meta' },
          `#${s.id} · ${s.state === 'pending' ? `from ${ui.fmtTime(s.starts_at_ms)} ` : ''}until ` +
          `${ui.fmtTime(s.ends_at_ms)} (${fmtLeft(s.ends_at_ms - now)} left) · ` +
          `${s.created_by} — “${s.comment}”`))));
    $('silence-count').textContent = String(silences.length);
    $('silences-panel').hidden = silences.length === 0;  // none: every alarm is notified
  }

  async function refresh() {
    const list = await api('/api/v1/silences');
    silences = list.silences.filter((s) => s.state !== 'expired');
    render();
    await ui.reloadAlarms();  // which alarms a silence holds changed
  }

  function start() {
    $('ack-form').addEventListener('submit', submitAck);
    $('ack-cancel').addEventListener('click', () => $('ack-dialog').close());
    $('sil-form').addEventListener('submit', submitSilence);
    $('sil-cancel').addEventListener('click', () => $('sil-dialog').close());
    refresh().catch(() => {});
    setInterval(() => refresh().catch(() => {}), 30000);  // starts and ends by their times send nothing
  }

  return { openAck, openSilence, refresh, render, start };
};
