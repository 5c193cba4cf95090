#!/usr/bin/env node
// Opens an Allure 2 HTML report in Debian's headless Chromium and checks what QA must see: a failed
// test filed under its category, with an image attachment that loads. Saves a screenshot either way.
//
// usage: node check-report.mjs --url http://127.0.0.1:PORT/index.html --category "NAME"
//          --test "NAME" --attachment "timeline.png" --screenshot PATH
//          [--chromium /usr/bin/chromium] [--timeout-ms 15000]
// Prints one JSON line: {"ok": true, ...what was seen} (exit 0) or {"ok": false, "error": ...} (exit 1).
// Exit 2: bad arguments.
//
// The report must be served over http (Allure's page loads its data with fetch, which file:// refuses).
// The flags keep Chromium from reaching out to the network this machine does not have.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { chromium } from "playwright-core";

const CHROMIUM_FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
  "--disable-quic",
];

function options() {
  const { values } = parseArgs({
    options: {
      url: { type: "string" },
      category: { type: "string" },
      test: { type: "string" },
      attachment: { type: "string" },
      screenshot: { type: "string" },
      chromium: { type: "string", default: "/usr/bin/chromium" },
      "timeout-ms": { type: "string", default: "15000" },
    },
  });
  for (const name of ["url", "category", "test", "attachment", "screenshot"]) {
    if (!values[name]) {
      console.error(`check-report: --${name} is required`);
      process.exit(2);
    }
  }
  return { ...values, timeoutMs: Number(values["timeout-ms"]) };
}

// A tree node (category or message group) whose own title is exactly `name`.
function groupNamed(page, name) {
  return page.locator(".node[data-node-kind=group]").filter({
    has: page.locator(":scope > .node__title .node__name", { hasText: name }),
  });
}

async function openCategory(page, opts, seen) {
  await page.goto(`${opts.url}#categories`, { waitUntil: "load" });
  const category = groupNamed(page, opts.category).first();
  await category.waitFor({ state: "visible" });
  seen.category = opts.category;
  await category.locator(":scope > .node__title").click();
  // Under a category Allure groups results by their message; open each group to find the test.
  const groups = category.locator(":scope > .node__children > .node[data-node-kind=group]");
  const count = await groups.count();
  for (let index = 0; index < count; index += 1) {
    await groups.nth(index).locator(":scope > .node__title").click();
  }
  const leaf = category.locator(".node__leaf", {
    has: page.locator(".node__name", { hasText: opts.test }),
  });
  await leaf.first().click();
  seen.test = opts.test;
}

async function checkTestResult(page, opts, seen) {
  const result = page.locator(".test-result");
  await result.locator(".test-result__name", { hasText: opts.test }).waitFor({ state: "visible" });
  seen.status = (await result.locator(".test-result__status").innerText()).trim();
  if (seen.status !== "Failed") {
    throw new Error(`the test shows status ${JSON.stringify(seen.status)}, not Failed`);
  }
  const categories = await result.locator(".pane__section", { hasText: "Categories:" }).innerText();
  if (!categories.includes(opts.category)) {
    throw new Error(`the test's categories are ${JSON.stringify(categories)}`);
  }
  seen.message = (await result.locator(".status-details__message").first().innerText()).split("\n")[0];
  return result;
}

async function openAttachment(page, result, opts, seen) {
  const row = result.locator(".attachment-row", {
    has: page.locator(".attachment-row__name", { hasText: opts.attachment }),
  });
  // Attachments may sit inside collapsed steps: expand steps until the row shows (bounded).
  for (let round = 0; round < 10 && !(await row.first().isVisible()); round += 1) {
    const collapsed = result.locator(".step:not(.step_expanded) > .step__title_hasContent");
    if ((await collapsed.count()) === 0) break;
    await collapsed.first().click();
  }
  await row.first().click();
  const image = result.locator(".attachment-row__content img").first();
  await image.waitFor({ state: "visible" });
  await page.waitForFunction((element) => element.complete && element.naturalWidth > 0, await image.elementHandle());
  seen.attachment = opts.attachment;
  seen.image = await image.evaluate((element) => ({ width: element.naturalWidth, height: element.naturalHeight }));
  await image.scrollIntoViewIfNeeded();
}

async function main() {
  const opts = options();
  const profile = mkdtempSync(join(tmpdir(), "lhsoak-chromium-"));
  const seen = { url: opts.url };
  let context;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: opts.chromium,
      headless: true,
      args: CHROMIUM_FLAGS,
      viewport: { width: 1600, height: 1000 },
    });
    context.setDefaultTimeout(opts.timeoutMs);
    const page = context.pages()[0] ?? (await context.newPage());
    try {
      await openCategory(page, opts, seen);
      const result = await checkTestResult(page, opts, seen);
      await openAttachment(page, result, opts, seen);
      await page.screenshot({ path: opts.screenshot });
      console.log(JSON.stringify({ ok: true, screenshot: opts.screenshot, ...seen }));
    } catch (error) {
      await page.screenshot({ path: opts.screenshot }).catch(() => {});
      throw error;
    }
  } catch (error) {
    console.log(JSON.stringify({ ok: false, error: String(error.message ?? error), ...seen }));
    process.exitCode = 1;
  } finally {
    await context?.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

await main();
