// The pages tell the truth about an asset's state: the library's counts, a failed upload's
// reason, a queued one's place in line, and a page open while its job is cancelled, which
// then says so and stops asking. One JSON line per step on stdout; the test answers
// "opened" with a line on stdin once it has cancelled the job.
//   opened   every page looked at; the processing page is open   <- test cancels its job
//   done     the processing page says cancelled and stopped polling
// Usage: node status.mjs <artifacts-dir> <plan-json: {list, failed, cancelled, queued, processing}>
import { createInterface } from "node:readline";
import { accessibilityProblems, captureConsole, launch, screenshots } from "./chromium.mjs";

const [dir, planText] = process.argv.slice(2);
const plan = JSON.parse(planText);
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const say = (step, data) => console.log(JSON.stringify({ step, ...data }));

const browser = await launch();
const report = { console: [], axe: {} };
const text = (page, selector) => page.locator(selector).innerText();
const visible = (page, selector) => page.locator(selector).isVisible();

async function look(name, url) {
  // axe-core/playwright runs only in a page of a context made by newContext.
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  captureConsole(page, report.console, { pageErrors: true });
  await page.goto(url, { waitUntil: "load", timeout: 30000 });
  report.axe[name] = await accessibilityProblems(page);
  await screenshots(page, dir, "status-" + name);
  return page;
}

async function watchPage(name) {
  const page = await look(name, plan[name]);
  return {
    page,
    status: await text(page, "#status"),
    notice: (await visible(page, "#waiting")) ? await text(page, "#waiting") : null,
    playerShown: await visible(page, "#video"),
    body: await page.locator("body").innerText(),
    polling: await page.evaluate(() => window.nebulaPlayer.polling),
  };
}

try {
  const list = await look("list", plan.list);
  report.count = await text(list, "header .count");
  const pages = {};
  for (const name of ["failed", "cancelled", "queued"]) {
    const { page, ...seen } = await watchPage(name);
    pages[name] = seen;
    await page.close();
  }
  const processing = await watchPage("processing");
  say("opened", { ...report, pages, processing: { ...processing, page: undefined } });
  await lines.next();
  await processing.page.waitForFunction(
    () => window.nebulaPlayer.status === "cancelled" && window.nebulaPlayer.polling === false,
    null, { timeout: 30000 });
  const polls = await processing.page.evaluate(() => window.nebulaPlayer.polls);
  say("done", {
    ok: true, console: report.console, polls,
    notice: await text(processing.page, "#waiting"),
    status: await text(processing.page, "#status"),
    playerShown: await visible(processing.page, "#video"),
  });
} catch (error) {
  say("done", { ok: false, error: String(error), console: report.console });
} finally {
  await browser.close();
}
