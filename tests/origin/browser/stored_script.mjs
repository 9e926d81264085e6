// Opens uploaded files served by the origin, as a victim clicking a link would, and reports
// (one JSON line) for each URL what a script in them could have done: the document's title,
// every request the page made, and whether the browser saved the file instead of showing
// it. Usage: node stored_script.mjs <url> [<url>...]; $RESOLVE (e.g. "MAP evil.test 127.0.0.1")
// answers DNS as a rebinding attacker's server would.
import { captureConsole, launch, runAndReport } from "./chromium.mjs";

const rules = process.env.RESOLVE ? ["--host-resolver-rules=" + process.env.RESOLVE] : [];
const browser = await launch({ args: rules });
const report = { ok: true, pages: [] };
await runAndReport(browser, report, async () => {
  const context = await browser.newContext({ acceptDownloads: true });
  for (const url of process.argv.slice(2)) {
    const page = await context.newPage();
    const seen = { url, requests: [], console: [], download: null, title: null };
    captureConsole(page, seen.console, { pageErrors: true });
    page.on("request", (request) => seen.requests.push(request.url()));
    const download = page.waitForEvent("download", { timeout: 30000 }).catch(() => null);
    try {
      await page.goto(url, { waitUntil: "load", timeout: 30000 });
      // Whatever a script started (a fetch of /api/assets, a beacon) has been sent once the
      // network is quiet; a media document may keep its file's connection open, though.
      await page.waitForLoadState("networkidle", { timeout: 5000 }).catch(() => {});
      seen.title = await page.title();
      seen.text = await page.evaluate(() => (document.body ? document.body.innerText : ""));
      seen.shown = true;
    } catch (error) {
      // A file the browser saves aborts the navigation ("Download is starting").
      seen.shown = false;
      seen.error = String(error);
      const saved = await download;
      seen.download = saved ? saved.suggestedFilename() : null;
    }
    report.pages.push(seen);
    await page.close();
  }
});
