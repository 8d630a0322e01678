// The hafab dashboard: reads the controller's GET API with this browser's session cookie
// (docs/architecture.md, "Dashboard") and redraws in place. Events are long-polled: a new
// event (a node down, a step of an operation) answers the poll at once and the views are
// read again; while an operation runs they are read at least every second for its clock.
'use strict';

const state = { status: null, leader: null, events: [], last: 0, sla: {}, slaAt: 0 };
const MAX_EVENTS = 300;
const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v; else if (k === 'style') e.style.cssText = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function ms(d) {
  if (d < 0 || d === null || d === undefined) return '…';
  if (d < 1000) return d + ' ms';
  if (d < 60000) return (d / 1000).toFixed(d < 10000 ? 2 : 1) + ' s';
  return Math.round(d / 60000) + ' min';
}

class HttpError extends Error {
  constructor(status, text) { super(status + ' ' + text); this.status = status; }
}

async function get(path) {
  const r = await fetch(path, { credentials: 'same-origin', cache: 'no-store' });
  if (!r.ok) throw new HttpError(r.status, (await r.text()).slice(0, 200));
  return r.json();
}

function nodeByName() {
  const m = new Map();
  for (const n of state.status.nodes) m.set(n.name, n);
  return m;
}

// What colours an instance: its node down, then fenced, busy, a standby (which may wait
// without running), not running, else its kind.
function instanceClass(i, nodes) {
  const n = nodes.get(i.node);
  if (n && n.state === 'down') return 'down';
  if (i.kind === 'fenced' || i.state === 'fenced') return 'fenced';
  if (i.busy) return 'busy';
  if (i.kind === 'standby') return 'standby';
  if (i.state !== 'running') return 'starting';
  return ['primary', 'standby', 'secondary'].includes(i.kind) ? i.kind : 'instance';
}

function drawLeader() {
  const l = state.leader;
  if (!l) return;
  const leads = l.leader && l.leader.id ? l.leader.id + ' (' + l.leader.url + ')' : 'none (election)';
  $('leader').textContent = 'controller ' + l.self.id + ' is ' + l.role + ' · leader: ' + leads;
  const f = $('follower');
  f.hidden = l.role === 'leader';
  f.replaceChildren();
  if (l.role !== 'leader') {
    f.append('This controller follows: it shows the cluster as stored, without the leader\'s ' +
             'view of nodes and instances. ');
    if (l.leader && l.leader.url) {
      f.append(el('a', { href: l.leader.url + '/ui/' }, 'Open the leader\'s dashboard'),
               ' (log in there with hafab dashboard --api ' + l.leader.url + ').');
    }
  }
}

function drawMap() {
  const s = state.status;
  const nodes = nodeByName();
  const fds = [...new Set(s.nodes.map((n) => n.fault_domain || '-'))].sort();
  const uds = [...new Set(s.nodes.map((n) => n.update_domain || '-'))].sort();
  const table = el('table', { class: 'grid' });
  table.append(el('tr', {}, el('th', {}, 'fault \\ update'), ...uds.map((u) => el('th', {}, u))));
  for (const fd of fds) {
    const row = el('tr', {}, el('th', {}, fd));
    for (const ud of uds) {
      const cell = el('td');
      for (const n of s.nodes) {
        if ((n.fault_domain || '-') !== fd || (n.update_domain || '-') !== ud) continue;
        const cls = 'node ' + n.state + (n.drained ? ' drained' : '');
        const box = el('div', { class: cls, 'data-testid': 'node-' + n.name, 'data-state': n.state },
                       el('b', {}, n.name), el('span', { class: 'muted' },
                                               n.state + (n.drained ? ', drained' : '')));
        const list = el('div');
        for (const i of s.instances) {
          if (i.node !== n.name) continue;
          const c = instanceClass(i, nodes);
          list.append(el('span', { class: 'chip k-' + c, title: i.instance + ': ' + i.state +
                                     ', ' + i.readiness + (i.kind ? ', ' + i.kind : '') },
                         i.role + ' ' + c));
        }
        box.append(list);
        cell.append(box);
      }
      row.append(cell);
    }
    table.append(row);
  }
  $('map').replaceChildren(table);
}

function quorumText(role) {
  const q = role.quorum;
  if (!q) return role.mode === 'replicated' ? '?' : '';
  return q.following + '/' + q.voters + ' following, quorum ' + q.quorum +
         (q.writable ? ' (writable)' : ' (LOST)');
}

function drawRoles() {
  const s = state.status;
  const body = $('roles').tBodies[0];
  body.replaceChildren();
  for (const r of s.roles) {
    const p = s.instances.find((i) => i.role === r.name && i.primary);
    body.append(el('tr', { 'data-testid': 'role-' + r.name },
      el('td', {}, r.name), el('td', {}, r.mode), el('td', {}, r.endpoint || ''),
      el('td', {}, r.ready + '/' + r.instances),
      el('td', { 'data-testid': 'primary-' + r.name }, p ? p.instance + ' on ' + p.node : ''),
      el('td', {}, r.epoch), el('td', {}, quorumText(r)), el('td', {}, r.operation || '')));
  }
}

function drawOps() {
  const ops = [...state.status.operations].sort((a, b) => b.created_ms - a.created_ms).slice(0, 8);
  const box = $('ops');
  box.replaceChildren();
  if (!ops.length) box.append(el('p', { class: 'muted' }, 'No operations yet.'));
  const now = Date.now();
  for (const op of ops) {
    const end = op.finished_ms > 0 ? op.finished_ms : now;
    const span = Math.max(end - op.created_ms, 1);
    const div = el('div', { class: 'op ' + op.state, 'data-testid': 'op-' + op.id,
                            'data-kind': op.kind, 'data-state': op.state });
    let title = op.kind + ' of ' + op.role + ': ' + op.state + ' · ' + ms(end - op.created_ms);
    if (op.old_node || op.new_node) title += ' · ' + (op.old_node || '?') + ' → ' + (op.new_node || '?');
    div.append(el('div', { class: 'title' }, title), el('div', { class: 'muted' }, op.reason || ''));
    const running = op.steps.find((st) => st.duration_ms < 0);
    if (op.state === 'running' && running) {
      div.append(el('div', { class: 'wait', 'data-testid': 'wait' },
                    'waiting in ' + running.name + (running.note ? ': ' + running.note : '')));
    }
    if (op.error) div.append(el('div', { class: 'wait' }, op.error));
    const gantt = el('div', { class: 'gantt' });
    for (const st of op.steps) {
      const d = st.duration_ms >= 0 ? st.duration_ms : now - st.started_ms;
      const left = (100 * (st.started_ms - op.created_ms)) / span;
      const width = (100 * d) / span;
      gantt.append(el('div', { class: 'step ' + (st.duration_ms < 0 ? 'running' : 'done'),
                               'data-testid': 'step', title: st.note || '' },
        el('div', { class: 'bar', style: 'left:' + left.toFixed(2) + '%;width:' + width.toFixed(2) + '%' }),
        el('span', { class: 'label' }, st.name + ' ' + ms(st.duration_ms >= 0 ? st.duration_ms : -1) +
                                       (st.duration_ms < 0 ? ' (running ' + ms(d) + ')' : ''))));
    }
    div.append(gantt);
    box.append(div);
  }
}

function fillSelect(select, values) {
  const have = new Set([...select.options].map((o) => o.value));
  for (const v of [...values].sort()) if (v && !have.has(v)) select.append(el('option', { value: v }, v));
}

function drawEvents() {
  const role = $('ev-role').value;
  const node = $('ev-node').value;
  fillSelect($('ev-role'), state.status.roles.map((r) => r.name));
  fillSelect($('ev-node'), state.status.nodes.map((n) => n.name));
  const body = $('events').tBodies[0];
  body.replaceChildren();
  for (const e of [...state.events].reverse()) {
    if (role && e.role !== role) continue;
    if (node && e.node !== node && e.new_node !== node && e.old_node !== node) continue;
    body.append(el('tr', { 'data-testid': 'event' },
      el('td', {}, (e.time || '').replace('T', ' ').replace('Z', '')), el('td', {}, e.type),
      el('td', {}, e.role || ''), el('td', {}, e.node || ''), el('td', {}, e.message)));
  }
}

async function loadSla() {
  const w = $('window').value;
  const out = {};
  for (const r of state.status.roles) {
    try {
      out[r.name] = await get('/v1/roles/' + encodeURIComponent(r.name) + '/sla?window_ms=' + w);
    } catch (e) {
      out[r.name] = { error: e.message };
    }
  }
  state.sla = out;
  state.slaAt = Date.now();
}

function drawSla() {
  const box = $('sla');
  box.replaceChildren();
  for (const [role, s] of Object.entries(state.sla)) {
    const row = el('div', { 'data-testid': 'sla-' + role });
    if (s.error || s.availability === null || s.availability === undefined) {
      row.append(el('b', {}, role), ' ', el('span', { class: 'muted' }, s.error || s.note || 'no data'));
      box.append(row);
      continue;
    }
    row.append(el('b', {}, role), ' ' + (100 * s.availability).toFixed(3) + ' % available · ' +
               ms(s.unavailable_ms) + ' down in ' + ms(s.observed_ms) + ' observed · ' +
               s.outages.length + ' outage(s)');
    const bar = el('div', { class: 'slabar' });
    const span = Math.max(s.to_ms - s.from_ms, 1);
    for (const o of s.outages) {
      const left = (100 * (o.start_ms - s.from_ms)) / span;
      bar.append(el('span', { title: ms(o.duration_ms), style: 'left:' + left.toFixed(2) + '%;width:' +
                              ((100 * o.duration_ms) / span).toFixed(2) + '%' }));
    }
    row.append(bar);
    box.append(row);
  }
}

function drawAll() {
  drawLeader();
  if (!state.status) return;
  drawMap();
  drawRoles();
  drawOps();
  drawEvents();
  drawSla();
}

function setConn(ok, text) {
  $('conn').textContent = text;
  $('conn').className = 'conn' + (ok ? '' : ' bad');
}

async function refresh() {
  [state.status, state.leader] = await Promise.all([get('/v1/status'), get('/v1/leader')]);
  if (Date.now() - state.slaAt > 10000) await loadSla();
  drawAll();
  setConn(true, 'live · ' + new Date().toLocaleTimeString());
}

async function run() {
  for (;;) {
    try {
      if (!state.status) {
        await refresh();
        state.last = Math.max(0, state.status.last_event - MAX_EVENTS);
      }
      const running = state.status.operations.some((o) => o.state === 'running');
      const wait = running || state.leader.role !== 'leader' ? 1000 : 15000;
      const got = await get('/v1/events?after=' + state.last + '&wait_ms=' + wait);
      state.events.push(...got.events);
      if (state.events.length > MAX_EVENTS) state.events.splice(0, state.events.length - MAX_EVENTS);
      state.last = Math.max(state.last, got.last);
      // A role became routable or not: its availability changed now, not at the next 10 s.
      if (got.events.some((e) => e.type.startsWith('role-'))) state.slaAt = 0;
      await refresh();
    } catch (e) {
      if (e.status === 401) {
        setConn(false, 'logged out: run hafab dashboard for a new link');
        return;
      }
      setConn(false, 'disconnected (' + e.message + '); retrying');
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

$('window').addEventListener('change', async () => { state.slaAt = 0; await loadSla(); drawSla(); });
$('ev-role').addEventListener('change', drawEvents);
$('ev-node').addEventListener('change', drawEvents);
run();
