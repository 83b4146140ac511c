#!/usr/bin/env node
// Captures one page load as HAR with a real third-party tool: the npm
// package chrome-har-capturer driving headless Chromium over the DevTools
// protocol (--remote-debugging-port). tests/scan.rs uses it to make
// tests/scan/chromium-capture.har (the page is served by the test itself).
//
//   npm ci --prefix tests/scan
//   node tests/scan/capture-chromium.js URL OUT.har [CHROMIUM]
//
// CHROMIUM defaults to $CHROMIUM, then /usr/bin/chromium (Debian package
// `chromium`). The page must set `window.leakscopeDone` to a promise that
// settles once it has sent everything: the capture waits for it, so
// requests made after the load event are in the HAR too.

'use strict';

const {spawn} = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const CHC = require('chrome-har-capturer');

const STARTUP_MS = 30000;

async function main() {
    const [url, out, chromium = process.env.CHROMIUM || '/usr/bin/chromium'] = process.argv.slice(2);
    if (!url || !out) {
        throw new Error('usage: capture-chromium.js URL OUT.har [CHROMIUM]');
    }
    const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'leakscope-chromium-'));
    const browser = spawn(chromium, [
        '--headless=new',
        // Containers and CI run as root, where the sandbox cannot start.
        '--no-sandbox',
        '--disable-gpu',
        '--no-first-run',
        '--no-default-browser-check',
        '--disable-extensions',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--remote-debugging-address=127.0.0.1',
        // Port 0: Chromium picks a free port and writes it to
        // DevToolsActivePort in the profile, so parallel runs never clash.
        '--remote-debugging-port=0',
        `--user-data-dir=${profile}`,
        'about:blank',
    ], {stdio: ['ignore', 'ignore', 'pipe']});
    let stderr = '';
    browser.stderr.on('data', (chunk) => {
        stderr = (stderr + chunk).slice(-4000);
    });
    const exited = new Promise((resolve) => browser.once('exit', resolve));
    try {
        const port = await devtoolsPort(profile, exited, () => stderr);
        const har = await new Promise((resolve, reject) => {
            CHC.run([url], {
                host: '127.0.0.1',
                port,
                content: true,
                timeout: STARTUP_MS,
                postHook: waitForPage,
            })
                .on('fail', (failedUrl, err) => reject(new Error(`${failedUrl}: ${err}`)))
                .on('har', resolve);
        });
        fs.writeFileSync(out, JSON.stringify(har, null, 2) + '\n');
        console.error(`capture-chromium: ${har.log.entries.length} entries written to ${out}`);
    } finally {
        browser.kill('SIGKILL');
        await exited;
        fs.rmSync(profile, {recursive: true, force: true});
    }
}

// Reads the DevTools port Chromium chose, failing early if it died.
async function devtoolsPort(profile, exited, stderr) {
    const file = path.join(profile, 'DevToolsActivePort');
    let dead = false;
    exited.then(() => {
        dead = true;
    });
    const deadline = Date.now() + STARTUP_MS;
    while (Date.now() < deadline) {
        if (dead) {
            throw new Error(`chromium exited before listening:\n${stderr()}`);
        }
        try {
            const port = Number(fs.readFileSync(file, 'utf8').split('\n')[0]);
            if (port > 0) {
                return port;
            }
        } catch (err) {
            // Not written yet.
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`chromium did not open a DevTools port within ${STARTUP_MS} ms:\n${stderr()}`);
}

// Waits for the page's own "everything sent" promise, then a moment more
// so chrome-har-capturer can fetch the last response bodies.
async function waitForPage(url, client) {
    const {result, exceptionDetails} = await client.Runtime.evaluate({
        expression: 'Promise.resolve(window.leakscopeDone)',
        awaitPromise: true,
        returnByValue: true,
    });
    if (exceptionDetails) {
        throw new Error(`the page failed: ${JSON.stringify(exceptionDetails)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
    return {done: result.value};
}

main().catch((err) => {
    console.error(`capture-chromium: ${err.stack || err}`);
    process.exit(1);
});
