// The library page's folders, search, sort and status filter in Debian's chromium. One JSON
// line per step on stdout; the test answers "searched" with a line on stdin once it has
// recorded another upload, which the page must add under the search that is on.
//   searched  folders of the two aaaa.mp4, what search, sort and filter showed  <- test uploads
//   done      the new upload appeared, searched and sorted like the rest
// Usage: node library.mjs <artifacts-dir> <list-url>
import { createInterface } from "node:readline";
import { accessibilityProblems, captureConsole, launch, screenshots } from "./chromium.mjs";

const [dir, url] = process.argv.slice(2);
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const say = (step, data) => console.log(JSON.stringify({ step, ...data }));
const report = { console: [] };

// The cards on show, in page order, as the page's data attributes describe them.
const shown = (page) => page.evaluate(() =>
  Array.from(document.querySelectorAll("li[data-id]")).filter((card) => !card.hidden).map((card) => ({
    title: card.dataset.title, folder: card.querySelector(".folder").textContent,
    duration: parseFloat(card.dataset.duration), status: card.dataset.status,
  })));

const browser = await launch();
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  captureConsole(page, report.console, { pageErrors: true });
  await page.goto(url, { waitUntil: "load", timeout: 30000 });
  report.axe = await accessibilityProblems(page);
  await screenshots(page, dir, "library");
  report.twins = (await shown(page)).filter((card) => card.title === "aaaa.mp4").map((card) => card.folder);
  await page.fill("#search", "aaaa");
  report.searched = await shown(page);
  report.counter = await page.locator("#shown").innerText();
  await screenshots(page, dir, "library-search");
  await page.fill("#search", "trip");
  report.byFolder = await shown(page);
  // The breadcrumb "work" of the other aaaa.mp4 shows that folder.
  await page.fill("#search", "");
  await page.locator("li[data-id]", { hasText: "media/work/b/" }).getByRole("button", { name: "Show the folder media/work/", exact: true }).click();
  report.crumb = { search: await page.inputValue("#search"), shown: await shown(page) };
  await page.fill("#search", "");
  await page.selectOption("#sort", "name");
  report.byName = (await shown(page)).map((card) => card.title);
  await page.selectOption("#sort", "duration");
  report.byDuration = (await shown(page)).map((card) => card.duration);
  await page.selectOption("#filter", "failed");
  report.failed = (await shown(page)).map((card) => card.status);
  await page.selectOption("#filter", "ready");
  report.ready = (await shown(page)).map((card) => card.status);
  await page.selectOption("#filter", "");
  await page.selectOption("#sort", "name");
  await page.fill("#search", "aaaa");
  say("searched", report);
  await lines.next();
  await page.waitForFunction(
    () => Array.from(document.querySelectorAll("li[data-id]")).filter((c) => !c.hidden).length === 3,
    null, { timeout: 30000 });
  say("done", { ok: true, console: report.console, after: await shown(page) });
} catch (error) {
  say("done", { ok: false, error: String(error), console: report.console });
} finally {
  await browser.close();
}
