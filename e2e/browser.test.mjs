// Browser test: a real vidgen and Debian's Chromium (headless, driven by playwright-core). It submits
// a job through the page at /, waits for COMPLETED, checks the <video> on the page and on the share
// link really plays, and saves screenshots to docs/ for the README; then jobs with options chosen on
// the page; then the page at desktop widths (every select wide enough for each of its choices) and on
// a phone-sized viewport (390 px): no sideways scroll, controls a finger can hit, and a wrong key
// reported as refused. Run it with `make e2e`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const vidgen = process.env.VIDGEN_BIN || join(root, 'vidgen');
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
const docs = join(root, 'docs');

let work, server, base, apiKey, context;
const browserErrors = [];

// startVidgen serves on a free loopback port and resolves with its base URL, read from the JSON
// start-up line (the links are derived from the listener: no -public-url needed).
function startVidgen(dataDir) {
  return new Promise((resolveStart, reject) => {
    const proc = spawn(vidgen, ['serve', '-addr', '127.0.0.1:0', '-metrics-addr', 'off', '-data', dataDir, '-min-free', '0', '-log-format', 'json', '-workers', '1'],
      { stdio: ['ignore', 'ignore', 'pipe'] });
    let buf = '';
    const timer = setTimeout(() => reject(new Error('vidgen did not start:\n' + buf)), 20000);
    proc.stderr.on('data', (chunk) => {
      buf += chunk;
      for (const line of buf.split('\n')) {
        if (!line.startsWith('{')) continue;
        const v = JSON.parse(line);
        if (v.msg === 'vidgen listening') {
          clearTimeout(timer);
          resolveStart({ proc, base: v.public_url, log: () => buf });
        }
      }
    });
    proc.on('exit', (code) => reject(new Error(`vidgen exited (${code}):\n${buf}`)));
  });
}

// playsIn plays the page's first <video> (muted, as browsers allow without a gesture) and resolves
// once currentTime has advanced, with the element's state; it rejects on a media error.
async function playsIn(page) {
  return page.evaluate(async () => {
    const v = document.querySelector('video');
    if (!v) throw new Error('no <video>');
    v.muted = true;
    await v.play();
    const start = performance.now();
    while (v.currentTime < 0.5) {
      if (v.error) throw new Error('media error ' + v.error.code + ': ' + v.error.message);
      if (performance.now() - start > 15000) throw new Error('currentTime stuck at ' + v.currentTime);
      await new Promise((r) => setTimeout(r, 50));
    }
    return { currentTime: v.currentTime, duration: v.duration, error: v.error, width: v.videoWidth, height: v.videoHeight, src: v.currentSrc };
  });
}

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'vidgen-e2e-'));
  const ff = (...args) => execFileSync('ffmpeg', ['-v', 'error', '-y', ...args]);
  ff('-f', 'lavfi', '-i', 'testsrc2=s=640x360', '-frames:v', '1', join(work, 'picture.jpg'));
  ff('-f', 'lavfi', '-i', 'sine=f=440:d=4', '-ac', '2', '-c:a', 'libmp3lame', '-b:a', '128k', join(work, 'voice.mp3'));
  const dataDir = join(work, 'data');
  mkdirSync(dataDir, { mode: 0o700 }); // vidgen keys never creates a data directory
  apiKey = JSON.parse(execFileSync(vidgen, ['keys', 'create', '-data', dataDir, '-name', 'e2e', '-json'])).apiKey;
  server = await startVidgen(dataDir);
  base = server.base;
  // A new, empty profile for every run; flags for a machine with no GPU, no sandbox and no network.
  context = await chromium.launchPersistentContext(join(work, 'profile'), {
    executablePath: chromiumPath,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required'],
    viewport: { width: 1000, height: 1100 },
  });
  context.on('console', (msg) => { if (msg.type() === 'error') browserErrors.push(msg.text() + ' at ' + msg.location().url); });
  context.on('weberror', (err) => browserErrors.push(String(err.error())));
  context.on('requestfailed', (req) => {
    // A video element may abort a range request it no longer needs; anything else is a failure.
    if (!/net::ERR_ABORTED/.test(req.failure()?.errorText || '')) browserErrors.push(`${req.url()}: ${req.failure()?.errorText}`);
  });
  mkdirSync(docs, { recursive: true });
});

after(async () => {
  await context?.close();
  server?.proc.kill('SIGTERM');
  if (work) rmSync(work, { recursive: true, force: true });
});

// clippedSelects lists, for every visible <select> on the page and each of its choices, the ones the
// select is too narrow to show in full once chosen. The width a choice needs is Chromium's own: that
// of a copy of the select holding only that choice, at its natural width, beside the original (a
// select's scrollWidth never exceeds its clientWidth, whatever it clips).
async function clippedSelects(page) {
  return page.evaluate(() => {
    const clipped = [];
    for (const s of document.querySelectorAll('select')) {
      if (!s.getClientRects().length) continue;
      const has = s.getBoundingClientRect().width;
      for (const o of s.options) {
        const copy = s.cloneNode(false);
        copy.removeAttribute('id');
        copy.append(o.cloneNode(true));
        copy.style.cssText = 'position: absolute; visibility: hidden; flex: none; width: auto; min-width: 0; max-width: none';
        s.parentElement.append(copy);
        const needs = copy.getBoundingClientRect().width;
        copy.remove();
        if (needs > has + 0.5) clipped.push(`select#${s.id} "${o.textContent}" needs ${Math.ceil(needs)} px, has ${Math.floor(has)}`);
      }
    }
    return clipped;
  });
}

test('a job submitted through the page plays on the page and on its share link', async () => {
  const page = await context.newPage();
  const requests = [];
  page.on('request', (req) => requests.push(req.url()));
  await page.goto(base + '/');
  assert.equal(await page.title(), 'vidgen: try it');

  await page.fill('#key', apiKey);
  await page.click('#save-key');
  await page.waitForSelector('#key-status[data-state="ok"]');
  assert.equal(await page.evaluate(() => localStorage.getItem('vidgen.apiKey')), apiKey);
  await page.setInputFiles('#image', join(work, 'picture.jpg'));
  await page.setInputFiles('#audio', join(work, 'voice.mp3'));
  await page.click('#submit');

  await page.waitForSelector('#state[data-status="COMPLETED"]', { timeout: 90000 });
  assert.equal(await page.$eval('#upload', (p) => p.value), 100, 'upload progress reached 100 %');
  assert.equal(await page.$eval('#progress', (p) => p.value), 100, 'job progress reached 100 %');
  const jobId = (await page.textContent('#job-id')).trim();
  assert.match(jobId, /^c[0-9a-z]{24}$/);

  const played = await playsIn(page);
  assert.ok(played.currentTime >= 0.5 && played.error === null, JSON.stringify(played));
  assert.equal(played.width, 640);
  assert.ok(Math.abs(played.duration - 4) < 0.1, `duration ${played.duration}`);
  assert.ok(played.src.startsWith(base + '/v/'), played.src);

  await page.waitForSelector(`#jobs td.id:text("${jobId}")`);
  await page.evaluate(() => { const v = document.querySelector('video'); v.pause(); v.currentTime = 1; });
  await page.waitForFunction(() => document.querySelector('video').readyState >= 2);
  await page.screenshot({ path: join(docs, 'page.png'), fullPage: true });

  const share = await page.getAttribute('#share', 'href');
  assert.ok(share.startsWith(base + '/s/'), share);
  const sharePage = await context.newPage();
  await sharePage.goto(share);
  const sharePlayed = await playsIn(sharePage);
  assert.ok(sharePlayed.currentTime >= 0.5 && sharePlayed.error === null, JSON.stringify(sharePlayed));
  await sharePage.evaluate(() => { const v = document.querySelector('video'); v.pause(); v.currentTime = 1; });
  await sharePage.waitForFunction(() => document.querySelector('video').readyState >= 2);
  await sharePage.screenshot({ path: join(docs, 'share.png') });

  const elsewhere = requests.filter((u) => !u.startsWith(base + '/'));
  assert.deepEqual(elsewhere, [], 'the page made requests to another origin');
  assert.deepEqual(browserErrors, [], 'the browser reported errors (CSP violations included)');
});

test('options chosen on the page reach the job: a square video on a colour with a waveform, and a portrait one', async () => {
  const page = await context.newPage();
  await page.goto(base + '/');
  assert.equal(await page.evaluate(() => localStorage.getItem('vidgen.apiKey')), apiKey, 'the key saved by the first test');
  assert.equal(await page.isHidden('#background-colour'), true, 'no colour picker while the background is the blurred image');
  await page.selectOption('#size', 'square');
  await page.selectOption('#background', 'colour');
  assert.equal(await page.isVisible('#background-colour'), true, 'a colour picker once a colour is chosen');
  await page.fill('#background-colour', '#102030');
  await page.check('#more-sizes input[value="portrait"]');
  // A waveform over a flat colour: its band is encoded alone and spliced into the picture, which
  // the browser must play as it plays any video.
  await page.selectOption('#waveform', 'bars');
  await page.setInputFiles('#image', join(work, 'picture.jpg'));
  await page.setInputFiles('#audio', join(work, 'voice.mp3'));
  await page.click('#submit');

  await page.waitForSelector('#state[data-status="COMPLETED"]', { timeout: 90000 });
  const jobId = (await page.textContent('#job-id')).trim();
  const st = await page.evaluate(async ([id, key]) => (await fetch('/api/status/' + id, { headers: { 'X-API-Key': key } })).json(), [jobId, apiKey]);
  assert.deepEqual({ size: st.options.size, background: st.options.background, waveform: st.options.waveform },
    { size: 'square', background: '#102030', waveform: 'bars' });
  assert.deepEqual(st.options.sizes, ['square', 'portrait']);
  const spliced = server.log().split('\n').filter((l) => l.includes(jobId) && l.includes("the waveform's band was spliced"));
  assert.equal(spliced.length, 2, 'want both sizes spliced:\n' + server.log());
  assert.deepEqual(await page.$$eval('#more-downloads a', (as) => as.map((a) => [a.textContent, a.href])), [['portrait', st.outputs[1].video]]);
  const played = await playsIn(page);
  assert.ok(played.currentTime >= 0.5 && played.error === null, JSON.stringify(played));
  assert.deepEqual([played.width, played.height], [1080, 1080]);
  assert.deepEqual(browserErrors, [], 'the browser reported errors (CSP violations included)');
});

// partsOf lists a multipart body's parts, by name: a file part as its file name, a text part as its
// value.
function partsOf(body) {
  const parts = {};
  for (const m of body.toString('latin1').matchAll(/name="([^"]+)"(?:; filename="([^"]*)")?\r\n(?:[^\r\n]+\r\n)*\r\n/g)) {
    parts[m[1]] = m[2] !== undefined ? m[2] : body.toString('latin1').slice(m.index + m[0].length).split('\r\n--')[0];
  }
  return parts;
}

test("the title's size and colour chosen on the page reach the job, options left as they are are not sent, captions go by URL", async () => {
  const page = await context.newPage();
  await page.goto(base + '/');
  const sent = [];
  let stop = false;
  await page.route('**/api/jobs', async (route) => {
    if (route.request().method() !== 'POST') return route.continue();
    sent.push(partsOf(route.request().postDataBuffer()));
    // The second submission stops here: the server would fetch its captions URL, and a test reaches no network.
    if (stop) return route.fulfill({ status: 400, contentType: 'application/json', body: '{"error":"Stopped by the test"}' });
    return route.continue();
  });
  await page.setInputFiles('#image', join(work, 'picture.jpg'));
  await page.setInputFiles('#audio', join(work, 'voice.mp3'));
  await page.fill('#title', 'Episode 12');
  await page.selectOption('#title-size', 'large');
  await page.selectOption('#title-colour', 'yellow');
  await page.click('#submit');

  await page.waitForSelector('#state[data-status="COMPLETED"]', { timeout: 90000 });
  assert.deepEqual(sent[0], { image: 'picture.jpg', audio: 'voice.mp3', title: 'Episode 12', titlePosition: 'top', titleSize: 'large', titleColor: 'yellow' },
    'the request carries the title as chosen and no option left at its default');
  const jobId = (await page.textContent('#job-id')).trim();
  const st = await page.evaluate(async ([id, key]) => (await fetch('/api/status/' + id, { headers: { 'X-API-Key': key } })).json(), [jobId, apiKey]);
  assert.deepEqual([st.options.title, st.options.titleSize, st.options.titleColor], ['Episode 12', 'large', 'yellow']);

  // Back to the defaults, and captions by URL: neither titleSize nor titleColor is sent.
  stop = true;
  await page.selectOption('#title-size', 'medium');
  await page.selectOption('#title-colour', 'white');
  await page.fill('#captions-url', 'https://captions.example/episode-12.srt');
  await page.click('#submit');
  await page.waitForFunction(() => /Stopped by the test/.test(document.querySelector('#error').textContent));
  assert.deepEqual(sent[1], { image: 'picture.jpg', audio: 'voice.mp3', title: 'Episode 12', titlePosition: 'top', captionsUrl: 'https://captions.example/episode-12.srt' });
  // The refusal this test made on purpose, as the console reports it.
  for (let i = browserErrors.length - 1; i >= 0; i--) if (/status of 400/.test(browserErrors[i])) browserErrors.splice(i, 1);
  assert.deepEqual(browserErrors, [], 'the browser reported errors (CSP violations included)');
});

test('a submission retried after a network error keeps its Idempotency-Key until the form changes', async () => {
  const page = await context.newPage();
  await page.goto(base + '/');
  const keys = [];
  await page.route('**/api/jobs', async (route) => {
    if (route.request().method() !== 'POST') return route.continue();
    keys.push(await route.request().headerValue('idempotency-key'));
    // The first two never reach the server, as a connection lost on the way.
    return keys.length <= 2 ? route.abort('failed') : route.continue();
  });
  await page.setInputFiles('#image', join(work, 'picture.jpg'));
  await page.setInputFiles('#audio', join(work, 'voice.mp3'));
  for (let i = 1; i <= 2; i++) {
    await page.click('#submit');
    await page.waitForFunction(() => /network error/.test(document.querySelector('#error').textContent));
    await page.evaluate(() => { document.querySelector('#error').textContent = ''; });
  }
  // The two failures this test made on purpose (the request's, and the console's report of it).
  for (let i = browserErrors.length - 1; i >= 0; i--) if (/ERR_FAILED/.test(browserErrors[i])) browserErrors.splice(i, 1);
  await page.selectOption('#size', 'square');
  await page.click('#submit');
  await page.waitForSelector('#state[data-status="COMPLETED"]', { timeout: 90000 });
  assert.equal(keys.length, 3, JSON.stringify(keys));
  assert.equal(keys[1], keys[0], 'a retry of the same form sends the same key');
  assert.notEqual(keys[2], keys[1], 'a changed form sends a new key');
  assert.deepEqual(browserErrors, [], 'the browser reported errors (CSP violations included)');
});

test('on a desktop (1000, 1280, 1440 px): every select shows each of its choices in full', async () => {
  const page = await context.newPage();
  await page.goto(base + '/');
  // The colour pickers take their share of a row once shown.
  await page.selectOption('#background', 'colour');
  await page.selectOption('#waveform', 'bars');
  await page.selectOption('#progress-bar', 'true');
  for (const width of [1000, 1280, 1440]) {
    await page.setViewportSize({ width, height: 1100 });
    assert.deepEqual(await clippedSelects(page), [], `at ${width} px wide, selects too narrow for their text`);
    assert.equal(await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth), 0, `the page scrolls sideways at ${width} px`);
  }
  assert.deepEqual(browserErrors, [], 'the browser reported errors (CSP violations included)');
});

test('on a phone (390 px): no sideways scroll, controls sized for touch, a wrong key is refused', async () => {
  const page = await context.newPage();
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(base + '/');
  await page.waitForSelector('#key-status[data-state="ok"]');
  // The widest content the page shows: the job list of the jobs above, a played job's share link,
  // and both colour pickers.
  await page.waitForSelector('#jobs td.id');
  await page.click('#jobs button:text("play")');
  await page.waitForSelector('#result:not([hidden])');
  await page.selectOption('#background', 'colour');
  await page.selectOption('#waveform', 'bars');
  await page.selectOption('#size', 'landscape');

  const layout = await page.evaluate(() => {
    const width = document.documentElement.clientWidth;
    const wide = [...document.querySelectorAll('body *')].filter((el) => el.getClientRects().length && el.getBoundingClientRect().right > width + 0.5)
      .map((el) => `${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''} right=${Math.round(el.getBoundingClientRect().right)}`);
    const small = [...document.querySelectorAll('button, select, input')].filter((el) => el.getClientRects().length)
      .map((el) => ({ el, r: el.getBoundingClientRect() }))
      .filter(({ el, r }) => r.height < 44 || (el.type !== 'file' && r.width < 44))
      .map(({ el, r }) => `${el.tagName.toLowerCase()}#${el.id || el.textContent} ${Math.round(r.width)}x${Math.round(r.height)}`);
    return { width, scrollWidth: document.documentElement.scrollWidth, wide, small };
  });
  assert.ok(layout.width <= 390, `the layout is ${layout.width} px wide in a 390-px viewport`);
  assert.equal(layout.scrollWidth, layout.width, `the page scrolls sideways: ${layout.scrollWidth} px of content in ${layout.width}: ${layout.wide.join(', ')}`);
  assert.deepEqual(layout.wide, [], 'elements reach past the right edge');
  assert.deepEqual(layout.small, [], 'controls smaller than 44x44 px');
  assert.deepEqual(await clippedSelects(page), [], 'selects too narrow for their text');
  await page.screenshot({ path: join(work, 'phone.png'), fullPage: true });

  await page.fill('#key', 'vg_' + 'x'.repeat(40));
  await page.click('#save-key');
  await page.waitForSelector('#key-status[data-state="refused"]');
  const said = await page.textContent('#key-status');
  assert.match(said, /refused/, said);
  assert.doesNotMatch(said, /saved in this browser/, said);
  assert.equal(await page.evaluate(() => localStorage.getItem('vidgen.apiKey')), apiKey, 'the refused key replaced the saved one');
  assert.deepEqual(browserErrors.filter((e) => !/401/.test(e)), [], 'the browser reported errors (CSP violations included)');
});
