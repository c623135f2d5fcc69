// Drive JupyterLab in headless Chromium through a list of steps; used by tests/lab_browser.py.
//
//   node lab.mjs <config.json>
//
// The config names the server (url, token), where to write screenshots and the browser
// log (artifacts), a fresh Chromium profile directory, and the steps. Each step waits
// for something visible in the page, so nothing here sleeps to synchronise. Prints one
// JSON object: {"ok": true, "results": {...}} or {"ok": false, "error": "...",
// "step": n}. The browser is always closed before exiting.
import { appendFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const consoleLog = join(config.artifacts, `${config.name}-console.log`);
const timeout = config.timeoutMs ?? 60000;

const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync'
];

function cellLocator(page, index) {
  return page.locator('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell').nth(index);
}

// One handler per step kind. `results` collects what the Python side asserts on.
const steps = {
  async open(page, step) {
    const url = `${config.url}/lab/tree/${step.path}?token=${config.token}&reset`;
    await page.goto(url, { waitUntil: 'domcontentloaded' });
    await page.waitForFunction(
      () => window.jupyterapp?.shell?.currentWidget?.sessionContext,
      null,
      {
        timeout
      }
    );
    // The kernel is up once its status is idle.
    await page.waitForFunction(
      () => window.jupyterapp.shell.currentWidget.sessionContext.session?.kernel?.status === 'idle',
      null,
      { timeout }
    );
  },

  async command(page, step) {
    await page.evaluate(
      ([id, args]) => window.jupyterapp.commands.execute(id, args ?? {}),
      [step.id, step.args]
    );
  },

  async click(page, step) {
    await page.locator(step.selector).first().click({ timeout });
  },

  async hover(page, step) {
    await page.locator(step.selector).first().hover({ timeout, force: step.force ?? false });
  },

  // Wait until `selector` (inside cell `cell` when given) matches at least `count`
  // elements in `state` (default: visible), optionally containing `text`.
  async wait(page, step, results) {
    const scope = step.cell === undefined ? page : cellLocator(page, step.cell);
    let locator = scope.locator(step.selector);
    if (step.text !== undefined) {
      locator = locator.filter({ hasText: step.text });
    }
    const count = step.count ?? 1;
    await locator.nth(count - 1).waitFor({
      state: step.state ?? 'visible',
      timeout: step.timeoutMs ?? timeout
    });
    if (step.as) {
      results[step.as] = await locator.allInnerTexts();
    }
  },

  // Record the inner text of every element matching `selector`.
  async text(page, step, results) {
    results[step.as] = await page.locator(step.selector).allInnerTexts();
  },

  // Record a JSON-able value computed in the page from `expression`.
  async evaluate(page, step, results) {
    results[step.as] = await page.evaluate(step.expression);
  },

  async screenshot(page, step) {
    const path = join(config.artifacts, `${config.name}-${step.file}`);
    if (step.selector) {
      await page.locator(step.selector).first().screenshot({ path, timeout });
    } else {
      await page.screenshot({ path, fullPage: true, timeout });
    }
  }
};

async function main() {
  const context = await chromium.launchPersistentContext(config.profile, {
    executablePath: config.chromium ?? '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1400, height: 900 },
    timeout
  });
  const results = {};
  let index = -1;
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(timeout);
    page.on('console', msg => appendFileSync(consoleLog, `[${msg.type()}] ${msg.text()}\n`));
    page.on('pageerror', error =>
      appendFileSync(consoleLog, `[pageerror] ${error.stack ?? error}\n`)
    );
    for (const [i, step] of config.steps.entries()) {
      index = i;
      const run = steps[step.do];
      if (!run) {
        throw new Error(`unknown step ${JSON.stringify(step)}`);
      }
      await run(page, step, results);
    }
    return { ok: true, results };
  } catch (error) {
    const page = context.pages()[0];
    if (page) {
      const path = join(config.artifacts, `${config.name}-failure.png`);
      await page.screenshot({ path, fullPage: true }).catch(() => undefined);
    }
    return { ok: false, step: index, error: String(error?.stack ?? error), results };
  } finally {
    await context.close();
  }
}

const outcome = await main().catch(error => ({
  ok: false,
  step: -1,
  error: String(error?.stack ?? error)
}));
process.stdout.write(JSON.stringify(outcome) + '\n');
process.exitCode = outcome.ok ? 0 : 1;
