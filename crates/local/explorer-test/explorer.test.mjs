// Runs the GraphQL explorer page of `marketplace serve` in a DOM (jsdom) against the real
// binary on 127.0.0.1 and drives it like a user: credentials, the documentation explorer,
// the query editor, Run, the response pane, history and prettify.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { JSDOM, VirtualConsole } from 'jsdom';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const BINARY = path.resolve(HERE, process.env.MARKETPLACE || '../../../target/debug/marketplace');
const START_TIMEOUT_MS = 20_000;
const WAIT_MS = 10_000;

let server; // { child, dir, url, apiKey, adminKey }

/** Spawns `marketplace serve` on 127.0.0.1 with a fresh data directory; resolves once it is ready. */
function startServer() {
  if (!existsSync(BINARY)) throw new Error(`no marketplace binary at ${BINARY} (cargo build --bin marketplace, or set MARKETPLACE)`);
  const dir = mkdtempSync(path.join(tmpdir(), 'explorer-test-'));
  const child = spawn(BINARY, ['serve', '--port', '0', '--data-dir', dir, '--clock', 'virtual'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const s = { child, dir, url: null, apiKey: null, adminKey: null };
  return new Promise((resolve, reject) => {
    let out = '', err = '';
    const fail = (why) => { clearTimeout(timer); stopServer(s); reject(new Error(`${why}\nstdout:\n${out}\nstderr:\n${err}`)); };
    const timer = setTimeout(() => fail(`the server was not ready within ${START_TIMEOUT_MS} ms`), START_TIMEOUT_MS);
    child.stderr.on('data', (d) => { err += d; });
    child.on('error', (e) => fail(`could not start ${BINARY}: ${e.message}`));
    child.on('exit', (code, sig) => { if (!s.ready) fail(`the server exited early (code ${code}, signal ${sig})`); });
    child.stdout.on('data', (d) => {
      out += d;
      const url = /marketplace listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      const key = /^api key: (\S+)$/m.exec(out);
      const admin = /^admin key: (\S+)$/m.exec(out);
      if (url && key && admin && /^ready in /m.test(out) && !s.ready) {
        s.ready = true;
        Object.assign(s, { url: url[1], apiKey: key[1], adminKey: admin[1] });
        clearTimeout(timer);
        resolve(s);
      }
    });
  });
}

function stopServer(s) {
  if (!s) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { try { rmSync(s.dir, { recursive: true, force: true }); } catch { /* already gone */ } resolve(); };
    if (s.child.exitCode !== null || s.child.signalCode !== null) return done();
    const kill9 = setTimeout(() => s.child.kill('SIGKILL'), 5_000);
    s.child.once('exit', () => { clearTimeout(kill9); done(); });
    s.child.kill('SIGTERM');
  });
}

before(async () => { server = await startServer(); });
// If the runner itself dies, the server must not outlive it.
process.on('exit', () => { if (server && server.child.exitCode === null) server.child.kill('SIGKILL'); });
after(async () => { await stopServer(server); });

/** Polls `probe` until it returns a truthy value; fails after `ms` with `what`. */
async function waitFor(what, probe, ms = WAIT_MS) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try { last = probe(); if (last) return last; } catch (e) { last = e; }
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what} (last: ${last})`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * Loads `/` from the server into a jsdom window, gives it a fetch bound to the server and runs
 * `/explorer.js` (fetched from the server, as the page's <script src> would) in it.
 * `storage` pre-fills localStorage, like a browser that has seen the page before.
 */
async function openPage(storage = {}) {
  const res = await fetch(server.url + '/');
  assert.equal(res.status, 200);
  const csp = res.headers.get('content-security-policy') || '';
  const html = await res.text();
  const errors = [];
  const virtualConsole = new VirtualConsole();
  virtualConsole.on('jsdomError', (e) => errors.push(e));
  const dom = new JSDOM(html, { url: server.url + '/', runScripts: 'dangerously', virtualConsole });
  const w = dom.window;
  const requests = [];
  w.fetch = (input, init) => {
    const u = new URL(String(input), server.url + '/');
    assert.equal(u.origin, server.url, `the page may only contact its own server, not ${u}`);
    const pending = fetch(u, init);
    requests.push({ url: u.pathname, init, pending });
    return pending;
  };
  for (const [k, v] of Object.entries(storage)) w.localStorage.setItem(k, v);
  const src = w.document.querySelector('script[src]').getAttribute('src');
  const js = await fetch(new URL(src, server.url));
  assert.equal(js.status, 200);
  w.eval(await js.text());
  const page = { dom, w, doc: w.document, errors, requests, csp };
  page.$ = (id) => w.document.getElementById(id);
  return page;
}

/** Lets the page's requests in flight finish (their handlers touch the DOM), then closes it. */
async function closePage(p) {
  await Promise.allSettled(p.requests.map((r) => r.pending));
  await new Promise((r) => setTimeout(r, 50));
  p.w.close();
  assert.deepEqual(p.errors.map(String), [], 'no uncaught errors in the page');
}

/** Types into a field like a user: sets the value and fires `input` (and `change` if asked). */
function type(p, id, value, { change = false } = {}) {
  const el = p.$(id);
  el.focus();
  el.value = value;
  el.dispatchEvent(new p.w.Event('input', { bubbles: true }));
  if (change) el.dispatchEvent(new p.w.Event('change', { bubbles: true }));
}

function clickText(p, root, selector, text) {
  const el = [...root.querySelectorAll(selector)].find((e) => e.textContent === text);
  assert.ok(el, `no ${selector} "${text}" in: ${(root.textContent ?? root.documentElement.textContent).slice(0, 400)}`);
  el.click();
  return el;
}

/** Clicks Run and waits for the status line to show the HTTP status; returns the parsed response. */
async function runQuery(p) {
  const before = p.requests.length;
  p.$('run').click();
  await waitFor('the response', () => p.requests.length > before && /^HTTP \d+/.test(p.$('status').textContent));
  return JSON.parse(p.$('result').textContent);
}

/** The last request the page sent to /graphql other than its introspection query. */
function lastRun(p) {
  const runs = p.requests.filter((r) => r.url === '/graphql' && JSON.parse(r.init.body).operationName !== 'IntrospectionQuery');
  assert.ok(runs.length, 'a query was sent');
  return runs[runs.length - 1];
}

async function enterApiKey(p, key) {
  clickText(p, p.doc, '.tab', 'Headers');
  assert.ok(!p.$('headers-body').classList.contains('hidden'), 'the Headers tab shows the credentials');
  type(p, 'api-key', key, { change: true });
}

async function docsReady(p) {
  await waitFor('the documentation explorer', () => p.$('docs').querySelector('h2')?.textContent === 'Schema');
}

const START = `mutation Start($t: WorkflowType!, $i: AWSJSON!) {
  startWorkflow(workflowType: $t, input: $i) { success executionArn error errorType }
}
query Status($arn: String!) {
  getWorkflowStatus(executionArn: $arn) { success status error errorType }
}
`;

test('without credentials the docs say why, and the API key loads them', async () => {
  const p = await openPage();
  try {
    await waitFor('the schema error', () => /could not be loaded/.test(p.$('docs').textContent));
    assert.match(p.$('docs').textContent, /not authorized|missing credentials/i);
    await enterApiKey(p, server.apiKey);
    await docsReady(p);
    const docs = p.$('docs');
    for (const h of ['Root types', 'Objects', 'Enums', 'Scalars', 'Directives']) clickless(docs, 'h3', h);
    assert.match(docs.textContent, /@aws_cognito_user_pools/);

    // Query → its fields, with arguments and types.
    clickText(p, docs, 'a.type', 'Query');
    assert.equal(docs.querySelector('h2').firstChild.textContent, 'Query');
    const queryFields = [...docs.querySelectorAll('a.field')].map((a) => a.textContent);
    assert.ok(queryFields.includes('getWorkflowStatus'), queryFields.join());
    assert.ok(queryFields.includes('listWorkflowExecutions'), queryFields.join());
    const item = clickText(p, docs, 'a.field', 'getWorkflowStatus').parentElement;
    assert.ok(item === null || item, 'clicked');
    assert.equal(docs.querySelector('h2').firstChild.textContent, 'getWorkflowStatus');
    assert.match(docs.textContent, /Arguments\s*executionArn: String!/);
    assert.match(p.$('docs-crumbs').textContent, /Schema › Query › Query\.getWorkflowStatus/);

    // Back to the root through the breadcrumbs, then Mutation.startWorkflow and its enum.
    clickText(p, p.$('docs-crumbs'), 'a', 'Schema');
    clickText(p, docs, 'a.type', 'Mutation');
    const start = [...docs.querySelectorAll('.item')].find((d) => d.querySelector('a.field')?.textContent === 'startWorkflow');
    assert.ok(start, 'Mutation.startWorkflow listed');
    assert.match(start.textContent, /^startWorkflow\(workflowType: WorkflowType!, input: AWSJSON!, executionName: String\): StartWorkflowResult!/);
    clickText(p, start, 'a.type', 'WorkflowType');
    assert.match(docs.textContent, /PROVIDER_ONBOARDING/);
    assert.match(docs.textContent, /Returned by/);

    // Search.
    type(p, 'docs-search', 'startworkflow');
    assert.match(docs.querySelector('h2').textContent, /Search: startworkflow/);
    const hits = [...docs.querySelectorAll('.item')].map((d) => d.textContent);
    assert.ok(hits.includes('Mutation.startWorkflow'), hits.join(' | '));
    type(p, 'docs-search', 'zzzz-no-such-thing');
    assert.match(docs.textContent, /Nothing matches/);

    // Nothing the Content-Security-Policy would block: no inline handlers or styles.
    assert.match(p.csp, /script-src 'self'/);
    assert.match(p.csp, /style-src 'self'/);
    for (const e of p.doc.querySelectorAll('*')) {
      assert.ok(!e.hasAttribute('style'), `inline style on <${e.tagName}>`);
      for (const a of e.getAttributeNames()) assert.ok(!a.startsWith('on'), `inline handler ${a} on <${e.tagName}>`);
    }
    assert.equal(p.doc.querySelectorAll('script:not([src])').length, 0, 'no inline script');
  } finally {
    await closePage(p);
  }
});

function clickless(root, selector, text) {
  assert.ok([...root.querySelectorAll(selector)].some((e) => e.textContent === text), `no ${selector} "${text}"`);
}

test('the default query runs and shows its data, status and history', async () => {
  const p = await openPage();
  try {
    await enterApiKey(p, server.apiKey);
    assert.match(p.$('query').value, /listWorkflowExecutions/);
    assert.equal(p.$('variables').value, '{"limit": 10}');
    const r = await runQuery(p);
    assert.equal(r.data.listWorkflowExecutions.success, true, JSON.stringify(r));
    assert.ok(Array.isArray(r.data.listWorkflowExecutions.executions));
    assert.match(p.$('status').textContent, /^HTTP 200 · \d+ ms$/);
    assert.ok(!p.$('status').classList.contains('error'));
    const h = p.$('history').querySelectorAll('li');
    assert.equal(h.length, 1);
    assert.match(h[0].textContent, /^RecentExecutions/);

    // __typename through Ctrl+Enter in the editor.
    type(p, 'query', '{ __typename }');
    const before = p.requests.length;
    p.$('query').dispatchEvent(new p.w.KeyboardEvent('keydown', { key: 'Enter', ctrlKey: true, bubbles: true, cancelable: true }));
    await waitFor('the Ctrl+Enter response', () => p.requests.length > before && /"Query"/.test(p.$('result').textContent));
    assert.deepEqual(JSON.parse(p.$('result').textContent), { data: { __typename: 'Query' } });

    // History restores the first query and its variables.
    p.$('toggle-history').click();
    assert.ok(!p.$('history-pane').classList.contains('hidden'));
    const items = p.$('history').querySelectorAll('li');
    assert.equal(items.length, 2);
    items[1].click();
    assert.match(p.$('query').value, /RecentExecutions/);
    assert.equal(p.$('variables').value, '{"limit": 10}');
  } finally {
    await closePage(p);
  }
});

test('startWorkflow then getWorkflowStatus through the operation picker', async () => {
  const p = await openPage();
  try {
    await enterApiKey(p, server.apiKey);
    type(p, 'query', START);
    assert.ok(!p.$('operation').classList.contains('hidden'), 'two operations: the picker shows');
    assert.deepEqual([...p.$('operation').options].map((o) => o.value), ['Start', 'Status']);
    const input = { providerId: 'prv_explorer', email: 'provider@example.com', country: 'US', businessType: 'individual' };
    type(p, 'variables', JSON.stringify({ t: 'PROVIDER_ONBOARDING', i: JSON.stringify(input) }));
    p.$('operation').value = 'Start';
    p.$('operation').dispatchEvent(new p.w.Event('change', { bubbles: true }));
    const r = await runQuery(p);
    const s = r.data.startWorkflow;
    assert.equal(s.success, true, JSON.stringify(r));
    assert.equal(s.errorType, null);
    assert.match(s.executionArn, /^arn:aws:states:[^:]+:\d+:execution:[^:]+:.+/);

    type(p, 'variables', JSON.stringify({ arn: s.executionArn }));
    p.$('operation').value = 'Status';
    p.$('operation').dispatchEvent(new p.w.Event('change', { bubbles: true }));
    const st = await runQuery(p);
    assert.equal(st.data.getWorkflowStatus.success, true, JSON.stringify(st));
    assert.match(st.data.getWorkflowStatus.status, /^(RUNNING|SUCCEEDED|FAILED|TIMED_OUT|ABORTED)$/);

    // The request carried the chosen operation, its variables and the key.
    const last = lastRun(p);
    const body = JSON.parse(last.init.body);
    assert.equal(body.operationName, 'Status');
    assert.equal(last.init.headers['x-api-key'], server.apiKey);
  } finally {
    await closePage(p);
  }
});

test('an invalid query shows the validation errors as AppSync words them', async () => {
  const p = await openPage();
  try {
    await enterApiKey(p, server.apiKey);
    type(p, 'query', '{ noSuchField }');
    const r = await runQuery(p);
    assert.equal(r.data, null);
    // AppSync puts no errorType on validation errors; the message names the rule.
    assert.equal(r.errors[0].errorType, undefined);
    assert.match(r.errors[0].message, /^Validation error of type FieldUndefined: .*noSuchField/);
    assert.match(p.$('result').textContent, /"message": "Validation error of type FieldUndefined/);
    assert.match(p.$('status').textContent, /^HTTP 200 · \d+ ms · errors$/);
    assert.ok(p.$('status').classList.contains('error'));

    // Variables that are not JSON are refused before anything is sent.
    type(p, 'variables', '{"limit": ');
    const sent = p.requests.length;
    p.$('run').click();
    await waitFor('the variables error', () => /^Variables: not valid JSON/.test(p.$('status').textContent));
    assert.equal(p.requests.length, sent);
    assert.ok(p.$('status').classList.contains('error'));
  } finally {
    await closePage(p);
  }
});

test('a wrong API key shows the Unauthorized error', async () => {
  const p = await openPage();
  try {
    await enterApiKey(p, 'da2-not-the-key');
    type(p, 'query', '{ __typename }');
    const r = await runQuery(p);
    assert.equal(r.errors[0].errorType, 'UnauthorizedException');
    assert.match(p.$('status').textContent, /^HTTP 401 /);
    assert.ok(p.$('status').classList.contains('error'));
    await waitFor('the docs error', () => /could not be loaded: .*the API key is not valid/.test(p.$('docs').textContent));
  } finally {
    await closePage(p);
  }
});

test('a bearer token (with or without its "Bearer " prefix) authorizes the page', async () => {
  const minted = await fetch(server.url + '/admin/token/mint', {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-admin-key': server.adminKey },
    body: JSON.stringify({ sub: 'usr_explorer', groups: ['admin'] }),
  });
  assert.equal(minted.status, 200);
  const { token } = await minted.json();
  for (const typed of [token, 'Bearer ' + token, 'bearer ' + token]) {
    const p = await openPage();
    try {
      clickText(p, p.doc, '.tab', 'Headers');
      type(p, 'token', typed, { change: true });
      await docsReady(p);
      type(p, 'query', '{ __typename }');
      const r = await runQuery(p);
      assert.deepEqual(r, { data: { __typename: 'Query' } }, typed.slice(0, 10));
      const last = lastRun(p);
      assert.equal(last.init.headers.authorization, 'Bearer ' + token);
      assert.equal(last.init.headers['x-api-key'], undefined);
    } finally {
      await closePage(p);
    }
  }
});

test('"remember" keeps the credentials for the next visit; unticking forgets them', async () => {
  const p = await openPage();
  let saved;
  try {
    await enterApiKey(p, server.apiKey);
    assert.equal(p.w.localStorage.getItem('mkt.explorer.apiKey'), null, 'not kept unless asked');
    p.$('remember').click();
    assert.equal(p.w.localStorage.getItem('mkt.explorer.apiKey'), server.apiKey);
    saved = {};
    for (let i = 0; i < p.w.localStorage.length; i++) saved[p.w.localStorage.key(i)] = p.w.localStorage.getItem(p.w.localStorage.key(i));
  } finally {
    await closePage(p);
  }
  // A new visit with that storage: the key is filled in and the docs load by themselves.
  const q = await openPage(saved);
  try {
    assert.equal(q.$('api-key').value, server.apiKey);
    assert.ok(q.$('remember').checked);
    await docsReady(q);
    q.$('remember').click();
    assert.equal(q.w.localStorage.getItem('mkt.explorer.apiKey'), null);
  } finally {
    await closePage(q);
  }
});

// GraphQL tokens, without commas (insignificant), to compare documents.
const tokens = (text) => text.match(/"""[\s\S]*?"""|"(?:[^"\\\n]|\\.)*"|#[^\n]*|\.\.\.|[{}()\[\]:!=$@|&]|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|[_A-Za-z][_0-9A-Za-z]*/g);

test('Prettify re-indents without changing the document, and the result still runs', async () => {
  const p = await openPage();
  try {
    await enterApiKey(p, server.apiKey);
    const doc = 'query Recent($limit: Int = 3, $skip: Boolean = false) { __typename '
      + 'list: listWorkflowExecutions(limit: $limit) { success ...Page ... on ListWorkflowExecutionsResult { nextToken } '
      + '... @skip(if: $skip) { error } executions { name status } } }\n'
      + 'fragment Page on ListWorkflowExecutionsResult { errorType }';
    type(p, 'query', doc);
    const plain = await runQuery(p);
    assert.equal(plain.data.list.success, true, JSON.stringify(plain));
    p.$('prettify').click();
    const pretty = p.$('query').value;
    assert.deepEqual(tokens(pretty), tokens(doc));
    assert.equal(pretty, [
      'query Recent($limit: Int = 3, $skip: Boolean = false) {',
      '  __typename',
      '  list: listWorkflowExecutions(limit: $limit) {',
      '    success',
      '    ...Page',
      '    ... on ListWorkflowExecutionsResult {',
      '      nextToken',
      '    }',
      '    ... @skip(if: $skip) {',
      '      error',
      '    }',
      '    executions {',
      '      name',
      '      status',
      '    }',
      '  }',
      '}',
      '',
      'fragment Page on ListWorkflowExecutionsResult {',
      '  errorType',
      '}',
      '',
    ].join('\n'));
    p.$('prettify').click();
    assert.equal(p.$('query').value, pretty, 'prettify is idempotent');
    type(p, 'variables', '{}');
    const again = await runQuery(p);
    assert.deepEqual(again, plain);
  } finally {
    await closePage(p);
  }
});

test('an operation name inside a string is not offered as an operation', async () => {
  const p = await openPage();
  try {
    await enterApiKey(p, server.apiKey);
    type(p, 'query', 'query Status { getWorkflowStatus(executionArn: "mutation Nope") { success errorType } }');
    assert.ok(p.$('operation').classList.contains('hidden'), 'one operation: no picker');
    type(p, 'variables', '{}');
    const r = await runQuery(p);
    assert.equal(JSON.parse(lastRun(p).init.body).operationName, 'Status');
    assert.equal(r.data.getWorkflowStatus.success, false, JSON.stringify(r));
    assert.ok(r.data.getWorkflowStatus.errorType, JSON.stringify(r));
  } finally {
    await closePage(p);
  }
});

test('when no response comes, the previous one is not left on screen', async () => {
  const p = await openPage();
  try {
    await enterApiKey(p, server.apiKey);
    type(p, 'query', '{ __typename }');
    await runQuery(p);
    assert.match(p.$('result').textContent, /"Query"/);
    // Headers that are not a JSON object: nothing is sent.
    type(p, 'headers', '{"x-trace": ');
    p.$('run').click();
    await waitFor('the headers error', () => /^Headers: not valid JSON/.test(p.$('status').textContent));
    assert.equal(p.$('result').textContent, '');
    type(p, 'headers', '{}');
    await runQuery(p);
    assert.match(p.$('result').textContent, /"Query"/);
    // The server cannot be reached (the browser's fetch rejects).
    p.w.fetch = () => Promise.reject(new p.w.TypeError('Failed to fetch'));
    p.$('run').click();
    await waitFor('the network error', () => p.$('status').textContent === 'Failed to fetch');
    assert.ok(p.$('status').classList.contains('error'));
    assert.equal(p.$('result').textContent, '');
  } finally {
    await closePage(p);
  }
});
