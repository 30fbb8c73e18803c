#!/usr/bin/env node
// Walks Strato's web console in a real headless browser (Debian's chromium, driven by
// playwright-core; no browser is downloaded) the way a person would, and saves a screenshot
// of every page.
//
// Steps: open / (redirected to /ui/): the overview names the cluster and the traffic charts;
// click "Topics", then the topic; click partition 0 in the partitions table: the message
// browser shows its latest messages; fill "From offset" with 0 and submit: the first messages
// show, with the value that must be there; follow "Next messages"; click "Groups", then the
// group: its total lag is shown; click "Bucket". Every page must answer 200 and carry no
// script error. Prints one JSON line: what each page showed, and the screenshot files.
//
// Usage: node console_browser.mjs --url http://127.0.0.1:PORT --topic T --group G
//   --expect-value TEXT --out DIR [--chromium /usr/bin/chromium]

import { mkdirSync, writeSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { parseArgs } from "node:util";

const SCRIPT = "console_browser";
const STEP_TIMEOUT_MS = 30_000;

let outputDone = false;
function emit(code, result, message) {
  if (outputDone) return;
  outputDone = true;
  if (message !== undefined) writeSync(2, `error: ${message}\n`);
  writeSync(1, JSON.stringify(result) + "\n");
  process.exit(code);
}

const { values } = parseArgs({
  options: {
    url: { type: "string" },
    topic: { type: "string" },
    group: { type: "string" },
    "expect-value": { type: "string" },
    out: { type: "string" },
    chromium: { type: "string", default: "/usr/bin/chromium" },
  },
});
for (const name of ["url", "topic", "group", "expect-value", "out"]) {
  if (!values[name]) emit(2, { error: `--${name} is required` }, `--${name} is required`);
}

// playwright-core from NODE_PATH (an ES module import does not read NODE_PATH).
const require = createRequire(join(process.env.NODE_PATH ?? ".", "noop.js"));
const { chromium } = require("playwright-core");

const result = { script: SCRIPT, pages: {}, screenshots: [] };
const pageErrors = [];

async function shot(page, name) {
  const file = join(values.out, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  result.screenshots.push(file);
}

async function expectOk(response, what) {
  if (!response || response.status() !== 200) {
    throw new Error(`${what}: HTTP ${response ? response.status() : "no response"}`);
  }
}

async function main() {
  mkdirSync(values.out, { recursive: true });
  const browser = await chromium.launch({
    executablePath: values.chromium,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.setDefaultTimeout(STEP_TIMEOUT_MS);
    page.on("pageerror", (err) => pageErrors.push(String(err)));

    // Overview, through the redirect of /.
    await expectOk(await page.goto(`${values.url}/`), "/");
    if (!page.url().endsWith("/ui/")) throw new Error(`/ led to ${page.url()}`);
    result.pages.overview = {
      title: await page.title(),
      heading: await page.textContent("h1"),
      charts: await page.locator("figure.chart").count(),
    };
    await shot(page, "overview");

    // Topics → the topic → partition 0's messages.
    await Promise.all([page.waitForURL("**/ui/topics"), page.click("nav >> text=Topics")]);
    result.pages.topics = { rows: await page.locator("tbody tr").count() };
    await shot(page, "topics");
    await Promise.all([
      page.waitForURL(`**/ui/topics/${values.topic}`),
      page.click(`a[href="/ui/topics/${values.topic}"]`),
    ]);
    await Promise.all([
      page.waitForURL("**partition=0**"),
      page.click(`a[href="/ui/topics/${values.topic}?partition=0#messages"]`),
    ]);
    const latest = await page.locator("#message-list tbody tr").count();
    await page.fill("input[name=offset]", "0");
    await Promise.all([page.waitForURL("**offset=0**"), page.click("form.browse button")]);
    const firstRows = page.locator("#message-list tbody tr");
    const first = await firstRows.count();
    const firstOffset = (await firstRows.first().locator("td").first().textContent()).trim();
    const text = await page.locator("#message-list").textContent();
    result.pages.topic = {
      latest_rows: latest,
      rows_from_offset_0: first,
      first_offset: firstOffset,
      shows_expected_value: text.includes(values["expect-value"]),
    };
    await shot(page, "topic-messages");
    await Promise.all([page.waitForURL("**offset=**"), page.click("text=Next messages")]);
    result.pages.topic.next_first_offset = (
      await page.locator("#message-list tbody tr").first().locator("td").first().textContent()
    ).trim();

    // Groups → the group: its lag.
    await Promise.all([page.waitForURL("**/ui/groups"), page.click("nav >> text=Groups")]);
    await shot(page, "groups");
    await Promise.all([
      page.waitForURL(`**/ui/groups/${values.group}`),
      page.click(`a[href="/ui/groups/${values.group}"]`),
    ]);
    const lagCard = page.locator(".card", { hasText: "Total lag" }).locator(".value");
    result.pages.group = {
      total_lag: (await lagCard.textContent()).trim(),
      offset_rows: await page.locator("table").last().locator("tbody tr").count(),
    };
    await shot(page, "group");

    // The bucket.
    await Promise.all([page.waitForURL("**/ui/bucket"), page.click("nav >> text=Bucket")]);
    result.pages.bucket = {
      objects: (
        await page.locator(".card", { hasText: "Objects referenced" }).locator(".value").textContent()
      ).trim(),
    };
    await shot(page, "bucket");
  } finally {
    await browser.close();
  }
  result.page_errors = pageErrors;
  emit(0, result);
}

main().catch((err) => emit(1, { ...result, error: String(err && err.stack ? err.stack : err) }, String(err)));
