// Opens a page of one origin in Debian's chromium and, from it, uploads to the s3proxy (another
// origin) with a presigned PUT carrying a Content-Type (so the browser sends a preflight), then
// reads the object back with a presigned GET. Prints one JSON line: what each fetch gave.
// Usage: node cors_upload.mjs <page-url> <presigned-put-url> <presigned-get-url> <body>
import { captureConsole, launch } from "./chromium.mjs";

const [pageUrl, putUrl, getUrl, body] = process.argv.slice(2);

const browser = await launch();
const report = { console: [] };
try {
  const page = await browser.newPage();
  captureConsole(page, report.console);
  await page.goto(pageUrl, { waitUntil: "load", timeout: 30000 });
  report.pageOrigin = await page.evaluate(() => window.location.origin);
  Object.assign(report, await page.evaluate(async ({ putUrl, getUrl, body }) => {
    const out = {};
    try {
      const put = await fetch(putUrl, { method: "PUT", headers: { "Content-Type": "text/plain" }, body });
      out.put = { status: put.status, etag: put.headers.get("ETag") };
    } catch (error) {
      out.putError = String(error);
    }
    try {
      const get = await fetch(getUrl);
      out.get = { status: get.status, text: await get.text() };
    } catch (error) {
      out.getError = String(error);
    }
    return out;
  }, { putUrl, getUrl, body }));
} catch (error) {
  report.error = String(error);
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
