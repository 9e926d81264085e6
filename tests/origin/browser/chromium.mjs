// The one way the browser scripts start Debian's chromium: headless, no sandbox (tests may run
// as root), nothing in the background that would reach the network, and the page's console
// kept for the report. Imported by watch, early, live, post_form and cors_upload.mjs.
import { chromium } from "playwright-core";

const FLAGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--no-first-run",
];
// Video pages start playing by themselves; a real user would have clicked.
const AUTOPLAY = "--autoplay-policy=no-user-gesture-required";

// Starts chromium ($CHROMIUM, else /usr/bin/chromium). autoplay: let media play without a gesture.
export async function launch({ autoplay = false } = {}) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: autoplay ? [...FLAGS, AUTOPLAY] : FLAGS,
    headless: true,
    timeout: 60000,
  });
}

// Appends each console message of page to lines ("type: text"); pageErrors: uncaught errors too.
export function captureConsole(page, lines, { pageErrors = false } = {}) {
  page.on("console", (message) => lines.push(message.type() + ": " + message.text()));
  if (pageErrors) page.on("pageerror", (error) => lines.push("pageerror: " + error.message));
}
