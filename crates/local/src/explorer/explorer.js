// The GraphQL explorer of `marketplace serve`: a query editor with variables and headers,
// a response view, a documentation explorer built from introspection, and a history kept
// in localStorage. Plain browser JavaScript: nothing is fetched but this server's /graphql.
'use strict';

// Substituted by the server with the introspection query (src/explorer/introspection.graphql).
const INTROSPECTION_QUERY = /*INTROSPECTION_QUERY*/;

const DEFAULT_QUERY = `# Ctrl+Enter runs the query. Set x-api-key or a bearer token under Headers.
query RecentExecutions($limit: Int) {
  listWorkflowExecutions(limit: $limit) {
    success
    executions { name workflowType status startDate }
    nextToken
    error
    errorType
  }
}
`;
const KEYS = {
  query: 'mkt.explorer.query', variables: 'mkt.explorer.variables', headers: 'mkt.explorer.headers',
  apiKey: 'mkt.explorer.apiKey', token: 'mkt.explorer.token', remember: 'mkt.explorer.remember',
  history: 'mkt.explorer.history', panes: 'mkt.explorer.panes',
};
const HISTORY_LIMIT = 50;

const $ = (id) => document.getElementById(id);
const store = {
  get(k, d) { try { const v = localStorage.getItem(k); return v === null ? d : v; } catch (e) { return d; } },
  set(k, v) { try { localStorage.setItem(k, v); } catch (e) { /* storage full or disabled */ } },
  del(k) { try { localStorage.removeItem(k); } catch (e) { /* disabled */ } },
};

// ---- editor --------------------------------------------------------------------------

function indentOnTab(ev) {
  if (ev.key !== 'Tab' || ev.shiftKey) return;
  ev.preventDefault();
  const t = ev.target, s = t.selectionStart, e = t.selectionEnd;
  t.value = t.value.slice(0, s) + '  ' + t.value.slice(e);
  t.selectionStart = t.selectionEnd = s + 2;
  t.dispatchEvent(new Event('input'));
}

function stripComments(text) {
  return text.replace(/"""[\s\S]*?"""|"(?:[^"\\\n]|\\.)*"|#[^\n]*/g, (m) => (m[0] === '#' ? '' : m));
}

// The document without comments and with every string emptied (a string may hold GraphQL).
function stripCommentsAndStrings(text) {
  return text.replace(/"""[\s\S]*?"""|"(?:[^"\\\n]|\\.)*"|#[^\n]*/g, (m) => (m[0] === '#' ? '' : '""'));
}

// The named operations of the document, in order.
function operations(text) {
  const names = [];
  const re = /\b(query|mutation|subscription)\s+([_A-Za-z][_0-9A-Za-z]*)/g;
  let m;
  const src = stripCommentsAndStrings(text);
  while ((m = re.exec(src)) !== null) names.push(m[2]);
  return names;
}

function refreshOperations() {
  const ops = operations($('query').value);
  const sel = $('operation'), label = $('operation-label');
  const previous = sel.value;
  sel.textContent = '';
  for (const op of ops) {
    const o = document.createElement('option');
    o.value = op; o.textContent = op;
    sel.appendChild(o);
  }
  if (ops.includes(previous)) sel.value = previous;
  sel.classList.toggle('hidden', ops.length < 2);
  label.classList.toggle('hidden', ops.length < 2);
}

// Tokens of a GraphQL document (for prettify).
function tokenize(text) {
  const re = /("""[\s\S]*?"""|"(?:[^"\\\n]|\\.)*"|#[^\n]*|\.\.\.|[{}()\[\]:!=$@|&]|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|[_A-Za-z][_0-9A-Za-z]*|,)/g;
  const out = [];
  let m;
  while ((m = re.exec(text)) !== null) {
    out.push(m[1]);
  }
  return out;
}

function prettify(text) {
  const toks = tokenize(text);
  const stack = [];
  let out = '', line = '';
  const indent = () => '  '.repeat(stack.filter((b) => b === '{').length);
  const flush = () => { if (line.trim()) out += indent() + line.trim() + '\n'; line = ''; };
  const isName = (t) => /^[_A-Za-z]/.test(t);
  let prev = '', prev2 = '';
  for (const t of toks) {
    const inBraces = stack.length > 0 && stack[stack.length - 1] === '{';
    if (t[0] === '#') { flush(); out += indent() + t + '\n'; continue; }
    const inValue = stack.length > 0 && stack[stack.length - 1] !== '{';
    if (t === '{' && inValue) { line += (prev === ':' ? ' ' : '') + '{'; stack.push('o'); }
    else if (t === '}' && stack[stack.length - 1] === 'o') { line += '}'; stack.pop(); }
    else if (t === '{') { line += (line ? ' ' : '') + '{'; flush(); stack.push('{'); }
    else if (t === '}') { flush(); stack.pop(); line = '}'; flush(); if (!stack.length) out += '\n'; }
    else if (t === '(' || t === '[') { line += (prev === ':' || prev === '=' ? ' ' : '') + t; stack.push(t); }
    else if (t === ',') { line += ','; }
    else if (t === ')' || t === ']') { line += t; stack.pop(); }
    else if (t === ':' || t === '!') { line += t; }
    else {
      const startsField = inBraces && isName(t) && prev !== '' && (isName(prev) || prev === ')' || prev === '}' || /^["\d-]/.test(prev))
        && !(prev === 'on' && prev2 === '...') && prev !== '@' && prev !== '...' && prev !== '$';
      // A fragment spread or inline fragment starts its own line, like a field.
      const startsSpread = inBraces && t === '...' && prev !== '' && (isName(prev) || prev === ')' || prev === '}' || /^["\d-]/.test(prev));
      if (startsField || startsSpread) flush();
      const glue = line === '' || /[(\[{$@]$/.test(line) || (prev === '...' && t !== 'on' && t !== '@');
      line += (glue ? '' : ' ') + t;
    }
    prev2 = prev; prev = t;
  }
  flush();
  return out.trim() + '\n';
}

// ---- requests ------------------------------------------------------------------------

function requestHeaders() {
  const headers = { 'content-type': 'application/json', accept: 'application/json' };
  let extra;
  try { extra = JSON.parse($('headers').value || '{}'); } catch (e) { throw new Error('Headers: not valid JSON (' + e.message + ')'); }
  if (extra === null || typeof extra !== 'object' || Array.isArray(extra)) throw new Error('Headers: must be a JSON object');
  for (const [k, v] of Object.entries(extra)) headers[k.toLowerCase()] = String(v);
  const key = $('api-key').value.trim(), token = $('token').value.trim();
  if (key) headers['x-api-key'] = key;
  if (token) headers.authorization = 'Bearer ' + token.replace(/^bearer\s+/i, '');
  return headers;
}

async function graphql(body) {
  const started = performance.now();
  const r = await fetch('/graphql', { method: 'POST', headers: requestHeaders(), body: JSON.stringify(body) });
  const text = await r.text();
  let json;
  try { json = JSON.parse(text); } catch (e) { json = { errors: [{ errorType: 'NotJSON', message: text }] }; }
  return { status: r.status, ms: Math.round(performance.now() - started), json };
}

function showStatus(text, isError) {
  const s = $('status');
  s.textContent = text;
  s.classList.toggle('error', !!isError);
}

async function run() {
  const query = $('query').value;
  let variables;
  try { variables = JSON.parse($('variables').value.trim() || '{}'); } catch (e) {
    showStatus('Variables: not valid JSON (' + e.message + ')', true);
    return;
  }
  const ops = operations(query);
  const operationName = ops.length > 1 ? $('operation').value : (ops[0] || null);
  showStatus('running…');
  try {
    const r = await graphql({ query, variables, operationName });
    $('result').textContent = JSON.stringify(r.json, null, 2);
    const failed = r.status !== 200 || (r.json && r.json.errors);
    showStatus(`HTTP ${r.status} · ${r.ms} ms${failed ? ' · errors' : ''}`, failed);
    addHistory({ query, variables: $('variables').value, operationName });
    if (r.status === 200 && !schemaLoaded) loadSchema();
  } catch (e) {
    // No response (server down, bad header JSON): the previous response must not stay shown.
    $('result').textContent = '';
    showStatus(e.message, true);
  }
}

// ---- history -------------------------------------------------------------------------

function readHistory() {
  try { const h = JSON.parse(store.get(KEYS.history, '[]')); return Array.isArray(h) ? h : []; } catch (e) { return []; }
}

function addHistory(entry) {
  const h = readHistory().filter((x) => !(x.query === entry.query && x.variables === entry.variables));
  h.unshift({ ...entry, at: new Date().toISOString() });
  store.set(KEYS.history, JSON.stringify(h.slice(0, HISTORY_LIMIT)));
  renderHistory();
}

function renderHistory() {
  const list = $('history');
  list.textContent = '';
  for (const e of readHistory()) {
    const li = document.createElement('li');
    const title = e.operationName || stripComments(e.query).trim().split('\n')[0].slice(0, 60) || '(empty)';
    li.textContent = title;
    const when = document.createElement('span');
    when.className = 'when';
    when.textContent = new Date(e.at).toLocaleString();
    li.appendChild(when);
    li.title = e.query;
    li.onclick = () => {
      $('query').value = e.query;
      $('variables').value = e.variables || '{}';
      saveEditors();
      refreshOperations();
      if (e.operationName) $('operation').value = e.operationName;
    };
    list.appendChild(li);
  }
}

// ---- documentation explorer ----------------------------------------------------------

let schema = null;
let schemaLoaded = false;
let schemaRequest = 0; // the latest load; an older one finishing later is ignored
let types = new Map();
let docStack = [];

async function loadSchema() {
  const mine = ++schemaRequest;
  $('docs').textContent = 'Loading the schema…';
  try {
    const r = await graphql({ query: INTROSPECTION_QUERY, operationName: 'IntrospectionQuery' });
    if (mine !== schemaRequest) return;
    if (r.status !== 200 || !r.json.data || !r.json.data.__schema) {
      const why = (r.json.errors && r.json.errors[0] && r.json.errors[0].message) || 'HTTP ' + r.status;
      $('docs').textContent = '';
      note($('docs'), 'The schema could not be loaded: ' + why);
      note($('docs'), 'Set the x-api-key or a bearer token under Headers, then reload.');
      return;
    }
    schema = r.json.data.__schema;
    types = new Map(schema.types.map((t) => [t.name, t]));
    schemaLoaded = true;
    docStack = [{ kind: 'root' }];
    renderDocs();
  } catch (e) {
    if (mine !== schemaRequest) return;
    $('docs').textContent = '';
    note($('docs'), 'The schema could not be loaded: ' + e.message);
  }
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = text;
  return e;
}

function note(parent, text) { parent.appendChild(el('p', 'note', text)); }

function push(view) { docStack.push(view); renderDocs(); }

function typeLink(name) {
  const a = el('a', 'type', name);
  a.onclick = () => push({ kind: 'type', name });
  return a;
}

// `[Type!]!` with the named type as a link.
function typeRef(t) {
  const span = el('span');
  if (!t) return span;
  if (t.kind === 'NON_NULL') { span.appendChild(typeRef(t.ofType)); span.appendChild(document.createTextNode('!')); }
  else if (t.kind === 'LIST') { span.appendChild(document.createTextNode('[')); span.appendChild(typeRef(t.ofType)); span.appendChild(document.createTextNode(']')); }
  else span.appendChild(typeLink(t.name));
  return span;
}

function description(parent, text) {
  if (text) parent.appendChild(el('div', 'desc', text));
}

function fieldItem(typeName, f) {
  const d = el('div', 'item');
  const a = el('a', 'field', f.name);
  a.onclick = () => push({ kind: 'field', type: typeName, name: f.name });
  d.appendChild(a);
  if (f.args && f.args.length) {
    d.appendChild(document.createTextNode('('));
    f.args.forEach((arg, i) => {
      if (i) d.appendChild(document.createTextNode(', '));
      d.appendChild(el('span', 'argname', arg.name));
      d.appendChild(document.createTextNode(': '));
      d.appendChild(typeRef(arg.type));
    });
    d.appendChild(document.createTextNode(')'));
  }
  d.appendChild(document.createTextNode(': '));
  d.appendChild(typeRef(f.type));
  if (f.isDeprecated) d.appendChild(el('span', 'kind', 'deprecated'));
  description(d, f.description);
  return d;
}

function argItem(arg) {
  const d = el('div', 'item');
  d.appendChild(el('span', 'argname', arg.name));
  d.appendChild(document.createTextNode(': '));
  d.appendChild(typeRef(arg.type));
  if (arg.defaultValue !== null && arg.defaultValue !== undefined) d.appendChild(document.createTextNode(' = ' + arg.defaultValue));
  description(d, arg.description);
  return d;
}

function renderRoot(box) {
  box.appendChild(el('h2', null, 'Schema'));
  description(box, schema.description);
  box.appendChild(el('h3', null, 'Root types'));
  for (const [label, t] of [['query', schema.queryType], ['mutation', schema.mutationType], ['subscription', schema.subscriptionType]]) {
    if (!t) continue;
    const d = el('div', 'item');
    d.appendChild(el('span', 'argname', label));
    d.appendChild(document.createTextNode(': '));
    d.appendChild(typeLink(t.name));
    box.appendChild(d);
  }
  const groups = [['Objects', 'OBJECT'], ['Enums', 'ENUM'], ['Input objects', 'INPUT_OBJECT'], ['Scalars', 'SCALAR']];
  for (const [title, kind] of groups) {
    const list = schema.types.filter((t) => t.kind === kind && !t.name.startsWith('__'));
    if (!list.length) continue;
    box.appendChild(el('h3', null, title));
    for (const t of list) { const d = el('div', 'item'); d.appendChild(typeLink(t.name)); box.appendChild(d); }
  }
  box.appendChild(el('h3', null, 'Directives'));
  for (const dir of schema.directives) {
    const d = el('div', 'item', '@' + dir.name);
    d.appendChild(el('span', 'kind', dir.locations.join(' | ')));
    description(d, dir.description);
    box.appendChild(d);
  }
}

function renderType(box, name) {
  const t = types.get(name);
  if (!t) { note(box, 'No type named ' + name); return; }
  const h = el('h2', null, t.name);
  h.appendChild(el('span', 'kind', t.kind.toLowerCase().replace('_', ' ')));
  box.appendChild(h);
  description(box, t.description);
  if (t.fields) {
    box.appendChild(el('h3', null, 'Fields'));
    for (const f of t.fields) box.appendChild(fieldItem(t.name, f));
  }
  if (t.inputFields) {
    box.appendChild(el('h3', null, 'Input fields'));
    for (const f of t.inputFields) box.appendChild(argItem(f));
  }
  if (t.enumValues) {
    box.appendChild(el('h3', null, 'Values'));
    for (const v of t.enumValues) { const d = el('div', 'item', v.name); description(d, v.description); box.appendChild(d); }
  }
  const usedBy = [];
  for (const other of schema.types) {
    for (const f of other.fields || []) {
      let r = f.type;
      while (r && r.ofType) r = r.ofType;
      if (r && r.name === t.name && !other.name.startsWith('__')) usedBy.push([other.name, f.name]);
    }
  }
  if (usedBy.length) {
    box.appendChild(el('h3', null, 'Returned by'));
    for (const [tn, fn] of usedBy) {
      const d = el('div', 'item');
      d.appendChild(typeLink(tn));
      d.appendChild(document.createTextNode('.'));
      const a = el('a', 'field', fn);
      a.onclick = () => push({ kind: 'field', type: tn, name: fn });
      d.appendChild(a);
      box.appendChild(d);
    }
  }
}

function renderField(box, typeName, name) {
  const t = types.get(typeName);
  const f = t && (t.fields || []).find((x) => x.name === name);
  if (!f) { note(box, 'No field ' + typeName + '.' + name); return; }
  const h = el('h2', null, f.name);
  h.appendChild(el('span', 'kind', 'on ' + typeName));
  box.appendChild(h);
  description(box, f.description);
  box.appendChild(el('h3', null, 'Type'));
  const d = el('div', 'item');
  d.appendChild(typeRef(f.type));
  box.appendChild(d);
  if (f.args.length) {
    box.appendChild(el('h3', null, 'Arguments'));
    for (const a of f.args) box.appendChild(argItem(a));
  }
}

function renderSearch(box, term) {
  const q = term.toLowerCase();
  box.appendChild(el('h2', null, 'Search: ' + term));
  let n = 0;
  for (const t of schema.types) {
    if (t.name.startsWith('__')) continue;
    if (t.name.toLowerCase().includes(q)) {
      const d = el('div', 'item'); d.appendChild(typeLink(t.name)); d.appendChild(el('span', 'kind', t.kind.toLowerCase())); box.appendChild(d); n++;
    }
    for (const f of t.fields || []) {
      if (f.name.toLowerCase().includes(q) || (f.description || '').toLowerCase().includes(q)) {
        const d = el('div', 'item');
        d.appendChild(typeLink(t.name));
        d.appendChild(document.createTextNode('.'));
        const a = el('a', 'field', f.name);
        a.onclick = () => push({ kind: 'field', type: t.name, name: f.name });
        d.appendChild(a);
        box.appendChild(d); n++;
      }
    }
  }
  if (!n) note(box, 'Nothing matches.');
}

function renderDocs() {
  const box = $('docs'), crumbs = $('docs-crumbs');
  box.textContent = '';
  crumbs.textContent = '';
  if (!schema) return;
  docStack.forEach((v, i) => {
    if (i) crumbs.appendChild(document.createTextNode(' › '));
    const label = v.kind === 'root' ? 'Schema' : v.kind === 'type' ? v.name : v.kind === 'search' ? '“' + v.term + '”' : v.type + '.' + v.name;
    if (i === docStack.length - 1) { crumbs.appendChild(el('span', null, label)); return; }
    const a = el('a', null, label);
    a.onclick = () => { docStack = docStack.slice(0, i + 1); renderDocs(); };
    crumbs.appendChild(a);
  });
  const v = docStack[docStack.length - 1];
  if (v.kind === 'root') renderRoot(box);
  else if (v.kind === 'type') renderType(box, v.name);
  else if (v.kind === 'field') renderField(box, v.type, v.name);
  else renderSearch(box, v.term);
  box.scrollTop = 0;
}

// ---- state ---------------------------------------------------------------------------

function saveEditors() {
  store.set(KEYS.query, $('query').value);
  store.set(KEYS.variables, $('variables').value);
  store.set(KEYS.headers, $('headers').value);
  if ($('remember').checked) {
    store.set(KEYS.apiKey, $('api-key').value);
    store.set(KEYS.token, $('token').value);
  }
}

function setPane(button, pane, visible) {
  $(pane).classList.toggle('hidden', !visible);
  $(button).setAttribute('aria-pressed', String(visible));
  const panes = JSON.parse(store.get(KEYS.panes, '{}') || '{}');
  panes[pane] = visible;
  store.set(KEYS.panes, JSON.stringify(panes));
}

function init() {
  $('query').value = store.get(KEYS.query, DEFAULT_QUERY);
  $('variables').value = store.get(KEYS.variables, '{"limit": 10}');
  $('headers').value = store.get(KEYS.headers, '{}');
  const remember = store.get(KEYS.remember, 'false') === 'true';
  $('remember').checked = remember;
  if (remember) {
    $('api-key').value = store.get(KEYS.apiKey, '');
    $('token').value = store.get(KEYS.token, '');
  }
  let panes = {};
  try { panes = JSON.parse(store.get(KEYS.panes, '{}')) || {}; } catch (e) { panes = {}; }
  if (panes['history-pane']) setPane('toggle-history', 'history-pane', true);
  if (panes['docs-pane'] === false) setPane('toggle-docs', 'docs-pane', false);

  for (const id of ['query', 'variables', 'headers']) {
    $(id).addEventListener('keydown', indentOnTab);
    $(id).addEventListener('input', saveEditors);
  }
  for (const id of ['api-key', 'token']) $(id).addEventListener('input', saveEditors);
  // New credentials load the docs if they are not there yet (no need to press "reload").
  for (const id of ['api-key', 'token', 'headers']) $(id).addEventListener('change', () => { if (!schemaLoaded) loadSchema(); });
  $('query').addEventListener('input', refreshOperations);
  $('remember').addEventListener('change', () => {
    store.set(KEYS.remember, String($('remember').checked));
    if ($('remember').checked) saveEditors(); else { store.del(KEYS.apiKey); store.del(KEYS.token); }
  });
  document.addEventListener('keydown', (ev) => {
    if ((ev.ctrlKey || ev.metaKey) && ev.key === 'Enter') { ev.preventDefault(); run(); }
    if ((ev.ctrlKey || ev.metaKey) && ev.shiftKey && (ev.key === 'P' || ev.key === 'p')) { ev.preventDefault(); $('prettify').click(); }
  });
  $('run').onclick = run;
  $('prettify').onclick = () => { $('query').value = prettify($('query').value); saveEditors(); };
  $('toggle-history').onclick = () => setPane('toggle-history', 'history-pane', $('history-pane').classList.contains('hidden'));
  $('toggle-docs').onclick = () => setPane('toggle-docs', 'docs-pane', $('docs-pane').classList.contains('hidden'));
  $('clear-history').onclick = () => { store.del(KEYS.history); renderHistory(); };
  $('reload-schema').onclick = loadSchema;
  $('docs-search').addEventListener('input', (ev) => {
    const term = ev.target.value.trim();
    if (!schema) return;
    docStack = docStack.filter((v) => v.kind !== 'search');
    if (term) docStack.push({ kind: 'search', term });
    renderDocs();
  });
  for (const tab of document.querySelectorAll('.tab')) {
    tab.onclick = () => {
      for (const t of document.querySelectorAll('.tab')) t.classList.toggle('active', t === tab);
      $('variables').classList.toggle('hidden', tab.dataset.tab !== 'variables');
      $('headers-body').classList.toggle('hidden', tab.dataset.tab !== 'headers');
    };
  }
  refreshOperations();
  renderHistory();
  loadSchema();
}

init();
