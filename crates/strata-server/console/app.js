// strata console: plain JavaScript over the server's own HTTP API. No framework, no
// network beyond this server. The live tail reads /subscribe with fetch (not EventSource)
// so that it can send the bearer token.
'use strict';

const $ = (sel) => document.querySelector(sel);
const state = {
  token: localStorage.getItem('strata-token') || '',
  selected: null,
  streamPages: 1, // pages of the stream listing shown
  streamsSeq: 0, // the latest stream listing load
  tail: [],
  tailMax: 200,
  lastId: null,
  samples: [], // {t, head, requests, sum_us, buckets}
  points: [], // {events, avg, p99}
  shop: 'unknown', // 'mounted' or 'absent': whether the server answers the shop's routes
  order: null, // the order the shop view shows
  shopSeq: 0, // the latest shop load
};

function headers(extra) {
  const h = Object.assign({}, extra || {});
  if (state.token) h['Authorization'] = 'Bearer ' + state.token;
  return h;
}

async function api(path, options) {
  const opts = Object.assign({}, options || {});
  opts.headers = headers(opts.headers);
  const res = await fetch(path, opts);
  const text = await res.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (_) { body = text; }
  if (!res.ok) {
    const msg = body && body.error ? body.error.code + ': ' + body.error.message : res.status + ' ' + text;
    const err = new Error(msg);
    err.status = res.status;
    throw err;
  }
  return body;
}

function toast(message) {
  const el = $('#toast');
  el.textContent = message;
  el.classList.add('show');
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => el.classList.remove('show'), 3000);
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') node.className = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const child of children) {
    if (child == null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function pretty(value) {
  try { return JSON.stringify(value, null, 2); } catch (_) { return String(value); }
}

function time(text) {
  const d = new Date(text);
  return isNaN(d) ? text : d.toLocaleTimeString();
}

function eventNode(event, options) {
  const compact = options && options.compact;
  const meta = el('div', { class: 'meta' },
    el('span', { class: 'pos' }, '#' + event.position),
    compact ? el('span', { class: 'stream mono' }, event.stream) : el('span', { class: 'pos' }, 'v' + event.version),
    el('span', { class: 'type' }, event.type),
    el('span', { class: 'pos' }, time(event.recorded_at)));
  const node = el(compact ? 'li' : 'div', { class: 'event', 'data-position': event.position }, meta);
  if (!compact) {
    node.append(el('pre', { class: 'data' }, pretty(event.data)));
    if (event.metadata && Object.keys(event.metadata).length) {
      node.append(el('pre', { class: 'md' }, pretty(event.metadata)));
    }
  }
  return node;
}

// ----- streams ------------------------------------------------------------------------

// The listing is paged by name (GET /streams?prefix=&after=&limit=): the console shows
// as many pages as were asked for with "more", and refreshes them from the first.
const STREAM_PAGE = 200;

async function loadStreams() {
  const prefix = $('#streams-search').value.trim();
  // Only the latest load renders: an older one (a timer's refresh racing a keystroke or a
  // "more") would show a stale list.
  const seq = ++state.streamsSeq;
  try {
    const streams = [];
    let after = null;
    let next = null;
    for (let page = 0; page < state.streamPages; page++) {
      const body = await api('/streams?limit=' + STREAM_PAGE
        + (prefix ? '&prefix=' + encodeURIComponent(prefix) : '')
        + (after ? '&after=' + encodeURIComponent(after) : ''));
      if (seq !== state.streamsSeq) return;
      streams.push(...body.streams);
      next = body.next || null;
      if (!next) break;
      after = next;
    }
    $('#streams-shown').textContent = streams.length ? '(' + streams.length + (next ? '+' : '') + ')' : '';
    const list = $('#streams-list');
    list.replaceChildren(...streams.map((s) => {
      const li = el('li', { 'data-stream': s.stream, onclick: () => selectStream(s.stream) },
        el('span', { class: 'name mono' }, s.stream),
        el('span', { class: 'muted' }, 'v' + s.version));
      if (s.stream === state.selected) li.classList.add('selected');
      return li;
    }));
    if (!streams.length) list.append(el('li', { class: 'empty' }, prefix ? 'no stream starts with that' : 'no streams yet'));
    if (next) {
      list.append(el('li', { class: 'more', onclick: () => { state.streamPages++; loadStreams(); } }, 'more streams…'));
    }
  } catch (err) {
    handleError(err);
  }
}

async function selectStream(name) {
  state.selected = name;
  $('#stream-name').textContent = name;
  for (const li of document.querySelectorAll('#streams-list li')) {
    li.classList.toggle('selected', li.dataset.stream === name);
  }
  await loadStream();
}

async function loadStream() {
  if (!state.selected) return;
  const box = $('#stream-events');
  try {
    const body = await api('/streams/' + encodeURIComponent(state.selected) + '?direction=backward&limit=100');
    box.replaceChildren(...body.events.map((e) => eventNode(e)));
  } catch (err) {
    box.replaceChildren(el('div', { class: 'empty' }, err.message));
  }
}

// ----- live tail ------------------------------------------------------------------------

function addTail(event) {
  state.tail.unshift(event);
  const list = $('#tail-list');
  const node = eventNode(event, { compact: true });
  node.classList.add('fresh');
  list.prepend(node);
  while (list.children.length > state.tailMax) list.lastChild.remove();
  if (state.tail.length > state.tailMax) state.tail.length = state.tailMax;
  $('#tail-count').textContent = '(last ' + list.children.length + ')';
  if (event.stream === state.selected) loadStream();
  if (SHOP_CATEGORIES.some((c) => event.stream.startsWith(c + '-'))) scheduleShop();
}

// The pill reads "connecting" (from the page itself) until the first attempt to follow
// the log resolves; from then on it says whether the tail is live.
function setConnected(on) {
  const pill = $('#conn');
  pill.textContent = on ? 'live' : 'offline';
  pill.className = 'pill ' + (on ? 'on' : 'off');
}

async function follow() {
  for (;;) {
    try {
      if (state.lastId == null) {
        const health = await api('/health');
        state.lastId = Math.max(0, health.head - 20);
      }
      const res = await fetch('/subscribe', { headers: headers({ 'Last-Event-ID': String(state.lastId) }) });
      if (!res.ok) throw new Error('subscribe answered ' + res.status);
      setConnected(true);
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let id = null;
          let data = '';
          let kind = 'message';
          for (const line of block.split('\n')) {
            if (line.startsWith('id:')) id = line.slice(3).trim();
            else if (line.startsWith('data:')) data += line.slice(5).trim();
            else if (line.startsWith('event:')) kind = line.slice(6).trim();
          }
          if (!data || kind !== 'message') continue;
          if (id) state.lastId = Number(id);
          addTail(JSON.parse(data));
        }
      }
    } catch (err) {
      handleError(err);
    }
    setConnected(false);
    await new Promise((r) => setTimeout(r, 1500));
  }
}

// ----- shop -----------------------------------------------------------------------------

// The shop view reads the shop's public routes (/shop/...) like any client. A server
// without the shop module answers them 404: the view then says so and asks nothing more.
const SHOP_CATEGORIES = ['order', 'product', 'inventory', 'payment'];
const SHOP_PAGE = 100;

function money(minor) {
  return (Number(minor) / 100).toFixed(2);
}

function statusNode(status) {
  return el('span', { class: 'status status-' + status }, status);
}

function dateTime(text) {
  const d = new Date(text);
  return isNaN(d) ? text : d.toLocaleString();
}

function shopAbsent() {
  state.shop = 'absent';
  $('#shop-body').hidden = true;
  const note = $('#shop-absent');
  note.textContent = 'the shop is not mounted on this server: its routes (/shop/...) answer 404';
  note.hidden = false;
}

function scheduleShop() {
  if (state.shop === 'absent') return;
  clearTimeout(scheduleShop.timer);
  scheduleShop.timer = setTimeout(loadShop, 200);
}

async function loadShop() {
  if (state.shop === 'absent') return;
  const seq = ++state.shopSeq;
  try {
    const [orders, products] = await Promise.all([
      api('/shop/orders?limit=' + SHOP_PAGE),
      api('/shop/products?limit=' + SHOP_PAGE),
    ]);
    if (seq !== state.shopSeq) return;
    state.shop = 'mounted';
    renderOrders(orders);
    renderProducts(products);
    if (state.order) await loadOrder();
  } catch (err) {
    if (err.status === 404) shopAbsent();
    else handleError(err);
  }
}

function renderOrders(page) {
  $('#shop-orders-shown').textContent = page.orders.length
    ? '(' + page.orders.length + (page.next ? '+, newest first' : '') + ')' : '';
  const rows = page.orders.map((o) => {
    const tr = el('tr', { 'data-order': o.id, onclick: () => selectOrder(o.id) },
      el('td', { class: 'mono' }, o.id),
      el('td', {}, o.customer),
      el('td', { class: 'order-status' }, statusNode(o.status)),
      el('td', { class: 'num' }, o.lines),
      el('td', { class: 'num' }, money(o.total)));
    if (o.id === state.order) tr.classList.add('selected');
    return tr;
  });
  if (!rows.length) rows.push(el('tr', {}, el('td', { class: 'empty', colspan: 5 }, 'no orders yet')));
  $('#shop-orders tbody').replaceChildren(...rows);
}

function renderProducts(page) {
  $('#shop-products-shown').textContent = page.products.length
    ? '(' + page.products.length + (page.next ? '+' : '') + ')' : '';
  const rows = page.products.map((p) => el('tr', { 'data-sku': p.sku },
    el('td', { class: 'mono' }, p.sku),
    el('td', { title: p.description }, p.name),
    el('td', { class: 'num' }, money(p.price)),
    el('td', { class: 'num available' }, p.available),
    el('td', { class: 'num' }, p.reserved),
    el('td', { class: 'num' }, p.on_hand)));
  if (!rows.length) rows.push(el('tr', {}, el('td', { class: 'empty', colspan: 6 }, 'no products yet')));
  $('#shop-products tbody').replaceChildren(...rows);
}

async function selectOrder(id) {
  state.order = id;
  $('#shop-order-id').textContent = id;
  for (const tr of document.querySelectorAll('#shop-orders tbody tr')) {
    tr.classList.toggle('selected', tr.dataset.order === id);
  }
  await loadOrder();
}

async function loadOrder() {
  const id = state.order;
  if (!id) return;
  const path = '/shop/orders/' + encodeURIComponent(id);
  try {
    const [order, history] = await Promise.all([api(path), api(path + '/history')]);
    if (id !== state.order) return;
    renderOrder(order);
    renderHistory(history.events);
  } catch (err) {
    if (id !== state.order) return;
    $('#shop-order').replaceChildren(el('div', { class: 'empty' }, err.message));
    $('#shop-history').replaceChildren();
  }
}

function cancelText(reason) {
  if (!reason) return null;
  if (reason.kind === 'insufficient_stock') return 'not enough ' + reason.sku;
  if (reason.kind === 'payment_declined') return 'payment declined: ' + reason.reason;
  return reason.kind;
}

function renderOrder(order) {
  const why = cancelText(order.cancel_reason);
  const facts = el('div', { class: 'order-facts' },
    statusNode(order.status),
    el('span', {}, 'customer ', el('strong', {}, order.customer)),
    el('span', {}, 'total ', el('strong', {}, money(order.total))),
    why ? el('span', { class: 'status-cancelled' }, why) : null);
  const lines = el('table', { id: 'shop-lines' },
    el('thead', {}, el('tr', {}, ...['sku', 'quantity', 'unit price', 'total'].map((h, i) => el('th', i ? { class: 'num' } : {}, h)))),
    el('tbody', {}, ...order.lines.map((l) => el('tr', { 'data-sku': l.sku },
      el('td', { class: 'mono' }, l.sku),
      el('td', { class: 'num' }, l.quantity),
      el('td', { class: 'num' }, money(l.unit_price)),
      el('td', { class: 'num' }, money(l.total))))));
  if (!order.lines.length) lines.tBodies[0].append(el('tr', {}, el('td', { class: 'empty', colspan: 4 }, 'no lines')));
  $('#shop-order').replaceChildren(facts, lines);
}

// The order's history as a timeline: what happened, when, who asked (the actor) and why
// (the command, what caused it, and the request it belongs to).
function renderHistory(events) {
  const ids = (e) => [
    e.command_id && 'command ' + e.command_id,
    e.causation_id && 'caused by ' + e.causation_id,
    e.correlation_id && 'correlation ' + e.correlation_id,
  ].filter(Boolean).join(' · ');
  $('#shop-history').replaceChildren(...events.map((e) => el('li', { 'data-position': e.position },
    el('div', { class: 'what' },
      el('span', { class: 'type' }, e.type),
      el('span', { class: 'when muted', title: e.recorded_at }, dateTime(e.recorded_at)),
      e.actor ? el('span', { class: 'actor' }, 'by ', el('strong', {}, e.actor)) : el('span', { class: 'actor muted' }, 'no actor'),
      el('span', { class: 'pos' }, '#' + e.position)),
    ids(e) ? el('div', { class: 'ids mono' }, ids(e)) : null,
    el('details', {}, el('summary', { class: 'muted' }, 'data'), el('pre', {}, pretty(e.data))))));
}

// ----- projections ----------------------------------------------------------------------

async function loadProjections() {
  try {
    const body = await api('/projections');
    const rows = body.projections.map((p) => el('tr', { 'data-projection': p.name },
      el('td', { class: 'mono' }, p.name),
      el('td', { class: 'muted' }, p.kind === 'process_manager' ? 'process manager' : 'projection v' + p.version),
      el('td', { class: 'state-' + p.state }, p.state.replace('_', ' ') + (p.last_error ? ' — ' + p.last_error : '')
        + (p.rebuild && p.rebuild.state === 'failed' ? ' (rebuild failed: ' + p.rebuild.last_error + ')' : '')),
      el('td', { class: 'num' }, p.checkpoint),
      el('td', { class: 'num' }, p.lag_events + ' ev / ' + p.lag_seconds.toFixed(1) + ' s'),
      el('td', { class: 'num' }, p.kind === 'projection' ? p.parked : ''),
      el('td', {}, ...(p.rebuildable ? [
        el('button', { class: 'rebuild', onclick: () => rebuild(p.name) }, 'rebuild'), ' ',
        el('button', { class: 'show-parked', onclick: () => showParked(p.name) }, 'parked'),
      ] : []))));
    $('#projections-table tbody').replaceChildren(...rows);
    if (!rows.length) {
      $('#projections-table tbody').append(el('tr', {}, el('td', { class: 'empty', colspan: 7 }, 'no projections')));
    }
  } catch (err) {
    handleError(err);
  }
}

async function rebuild(name) {
  try {
    await api('/projections/' + encodeURIComponent(name) + '/rebuild', { method: 'POST' });
    toast('rebuilding ' + name);
    loadProjections();
  } catch (err) {
    toast(err.message);
  }
}

async function showParked(name) {
  const box = $('#parked');
  try {
    const body = await api('/projections/' + encodeURIComponent(name) + '/parked');
    const title = el('h2', {}, 'Parked in ', el('span', { class: 'mono' }, name));
    if (!body.parked.length) {
      box.replaceChildren(title, el('div', { class: 'empty' }, 'nothing parked'));
      return;
    }
    box.replaceChildren(title, el('table', {},
      el('thead', {}, el('tr', {}, ...['position', 'stream', 'type', 'error', 'attempts', ''].map((h) => el('th', {}, h)))),
      el('tbody', {}, ...body.parked.map((p) => el('tr', {},
        el('td', { class: 'num' }, p.position),
        el('td', { class: 'mono' }, p.stream),
        el('td', {}, p.type),
        el('td', {}, p.error),
        el('td', { class: 'num' }, p.attempts),
        el('td', {}, el('button', { onclick: () => retry(name, p.position) }, 'retry')))))));
  } catch (err) {
    box.replaceChildren(el('div', { class: 'empty' }, err.message));
  }
}

async function retry(name, position) {
  try {
    await api('/projections/' + encodeURIComponent(name) + '/parked/' + position + '/retry', { method: 'POST' });
    toast('retried ' + position);
  } catch (err) {
    toast(err.message);
  }
  showParked(name);
  loadProjections();
}

// ----- charts ---------------------------------------------------------------------------

function quantile(buckets, count, q) {
  if (!count) return 0;
  let seen = 0;
  for (const b of buckets) {
    seen += b.count;
    if (seen >= q * count) return b.le_us == null ? 2000 : b.le_us / 1000;
  }
  return 0;
}

async function sample() {
  try {
    const s = await api('/stats');
    $('#head').textContent = s.head;
    $('#subscribers').textContent = s.sse_subscribers;
    const now = performance.now();
    const prev = state.samples[state.samples.length - 1];
    state.samples.push({ t: now, head: s.head, requests: s.requests, sum: s.latency_sum_us, buckets: s.latency_buckets });
    if (state.samples.length > 2) state.samples.shift();
    if (prev) {
      const dt = Math.max(0.001, (now - prev.t) / 1000);
      const n = s.requests - prev.requests;
      const buckets = s.latency_buckets.map((b, i) => ({ le_us: b.le_us, count: b.count - prev.buckets[i].count }));
      const point = {
        events: Math.max(0, (s.head - prev.head) / dt),
        avg: n > 0 ? (s.latency_sum_us - prev.sum) / n / 1000 : 0,
        p99: quantile(buckets, n, 0.99),
      };
      state.points.push(point);
      if (state.points.length > 120) state.points.shift();
      $('#throughput-now').textContent = point.events.toFixed(0) + ' events/s';
      $('#latency-now').textContent = 'avg ' + point.avg.toFixed(2) + ' ms · p99 ≤ ' + point.p99.toFixed(2) + ' ms';
      draw($('#chart-throughput'), [{ key: 'events', color: '#4fb3ff' }], ' ev/s');
      draw($('#chart-latency'), [{ key: 'p99', color: '#e0b341' }, { key: 'avg', color: '#4cc38a' }], ' ms');
    }
  } catch (err) {
    handleError(err);
  }
}

function draw(canvas, series, unit) {
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || canvas.width;
  const h = canvas.clientHeight || canvas.height;
  if (canvas.width !== w * ratio) { canvas.width = w * ratio; canvas.height = h * ratio; }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const points = state.points;
  let max = 1;
  for (const p of points) for (const s of series) max = Math.max(max, p[s.key]);
  max *= 1.15;
  ctx.strokeStyle = '#26303b';
  ctx.fillStyle = '#7d8a99';
  ctx.font = '11px system-ui, sans-serif';
  ctx.lineWidth = 1;
  for (let i = 0; i <= 3; i++) {
    const y = 8 + (h - 20) * i / 3;
    ctx.beginPath(); ctx.moveTo(40, y); ctx.lineTo(w - 6, y); ctx.stroke();
    const v = max * (1 - i / 3);
    ctx.fillText((v >= 100 ? v.toFixed(0) : v.toFixed(1)) + unit, 2, y + 4);
  }
  const slots = 120;
  const step = (w - 46) / (slots - 1);
  for (const s of series) {
    ctx.strokeStyle = s.color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    points.forEach((p, i) => {
      const x = 40 + (slots - points.length + i) * step;
      const y = 8 + (h - 20) * (1 - p[s.key] / max);
      if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    });
    ctx.stroke();
  }
  let x = w - 8;
  ctx.textAlign = 'right';
  for (const s of series.slice().reverse()) {
    ctx.fillStyle = s.color;
    ctx.fillText(s.key, x, 20);
    x -= 40;
  }
  ctx.textAlign = 'left';
}

// ----- start ----------------------------------------------------------------------------

let authWarned = false;
function handleError(err) {
  if (err && (err.status === 401 || err.status === 403)) {
    if (!authWarned) toast('this server needs a token: enter it above');
    authWarned = true;
  }
}

function start() {
  $('#token').value = state.token;
  $('#token-form').addEventListener('submit', (e) => {
    e.preventDefault();
    state.token = $('#token').value.trim();
    localStorage.setItem('strata-token', state.token);
    authWarned = false;
    refresh();
  });
  let typing;
  $('#streams-search').addEventListener('input', () => {
    clearTimeout(typing);
    state.streamPages = 1;
    typing = setTimeout(loadStreams, 150);
  });
  refresh();
  setInterval(loadStreams, 3000);
  setInterval(loadProjections, 2000);
  setInterval(sample, 1000);
  setInterval(loadShop, 5000);
  follow();
}

function refresh() {
  loadStreams();
  loadProjections();
  sample();
  loadShop();
}

start();
