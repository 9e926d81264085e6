// The one way the browser scripts start Debian's chromium: headless, no sandbox (tests may run
// as root), nothing in the background that would reach the network, and the page's console
// kept for the report. Imported by watch, early, live, post_form, cors_upload and stored_script.mjs.
import { chromium } from "playwright-core";

const FLAGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--no-first-run",
];
// Video pages start playing by themselves; a real user would have clicked.
const AUTOPLAY = "--autoplay-policy=no-user-gesture-required";

// Starts chromium ($CHROMIUM, else /usr/bin/chromium). autoplay: let media play without a gesture;
// args: more switches (e.g. --host-resolver-rules, a DNS answer of the test's choosing).
export async function launch({ autoplay = false, args = [] } = {}) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: [...(autoplay ? [...FLAGS, AUTOPLAY] : FLAGS), ...args],
    headless: true,
    timeout: 60000,
  });
}

// Appends each console message of page to lines ("type: text"); pageErrors: uncaught errors too.
export function captureConsole(page, lines, { pageErrors = false } = {}) {
  page.on("console", (message) => lines.push(message.type() + ": " + message.text()));
  if (pageErrors) page.on("pageerror", (error) => lines.push("pageerror: " + error.message));
}

// Runs work() and prints report as one JSON line, with ok and, when work threw, the error; the
// browser is closed whatever happened.
export async function runAndReport(browser, report, work) {
  try {
    await work();
    report.ok = true;
  } catch (error) {
    report.ok = false;
    report.error = String(error);
  } finally {
    await browser.close();
  }
  console.log(JSON.stringify(report));
}

// The two screen sizes every page is looked at in (desktop, phone).
export const SIZES = [{ width: 1280, height: 800 }, { width: 390, height: 844 }];

// Writes page's screenshot, at each of SIZES, as <dir>/<name>-<width>x<height>.png; the
// viewport is left at the first size.
export async function screenshots(page, dir, name) {
  for (const size of [...SIZES].reverse()) {
    await page.setViewportSize(size);
    await page.screenshot({ path: `${dir}/${name}-${size.width}x${size.height}.png` });
  }
}

// The serious and critical accessibility violations axe-core finds in page, as "id: help (n)".
export async function accessibilityProblems(page) {
  const { AxeBuilder } = await import("@axe-core/playwright");
  const results = await new AxeBuilder({ page }).analyze();
  return results.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(" ")).join(", ")})`);
}
