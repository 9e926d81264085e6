// Opens the page `nebula upload-form --html` printed in Debian's chromium, chooses a file in
// its <input type=file>, submits, and reports as one JSON line the answer the browser got
// (status and the page it shows). Usage: node post_form.mjs <page-url> <file-path>
// (tests/s3proxy/test_post_policy.py)
import { captureConsole, launch, runAndReport } from "./chromium.mjs";

const [url, file] = process.argv.slice(2);

const browser = await launch();
const report = { url, console: [] };
await runAndReport(browser, report, async () => {
  const page = await browser.newPage();
  captureConsole(page, report.console);
  await page.goto(url, { waitUntil: "load", timeout: 30000 });
  await page.setInputFiles("input[type=file]", file);
  const [answer] = await Promise.all([
    page.waitForResponse((response) => response.request().method() === "POST", { timeout: 60000 }),
    page.click("button[type=submit]"),
  ]);
  report.status = answer.status();
  report.body = await answer.text();
});
