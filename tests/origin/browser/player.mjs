// The watch page's controls in Debian's chromium, reported as one JSON line:
//   ready        a ready video where the browser refuses autoplay with sound: one seek bar,
//                the unmute button (clicked), the download link, previews inside the player
//   transcoding  a video whose first seconds only are published, autoplay with sound allowed:
//                the bar spans the whole title and a seek past the published part is refused
//   portrait     a 9:16 video at 1280x800: the player and its controls fit; rung names
// Usage: node player.mjs <artifacts-dir> <plan-json: {ready, transcoding, portrait}>
import { accessibilityProblems, captureConsole, launch, runAndReport, screenshots } from "./chromium.mjs";

const [dir, planText] = process.argv.slice(2);
const plan = JSON.parse(planText);
const report = { console: [], axe: {} };
const box = (page, selector) => page.locator(selector).boundingBox();

async function open(browser, name, url) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  captureConsole(page, report.console, { pageErrors: true });
  await page.goto(url, { waitUntil: "load", timeout: 30000 });
  await page.waitForFunction(() => document.getElementById("video").currentTime > 0.3, null, { timeout: 45000 });
  return page;
}

async function finish(page, name) {
  report.axe[name] = await accessibilityProblems(page);
  await screenshots(page, dir, "player-" + name);
  await page.setViewportSize({ width: 1280, height: 800 });
}

// Where the preview sits when the pointer is at fraction of the seek bar, and the player's box.
async function previewAt(page, fraction) {
  const bar = await box(page, "#seek");
  await page.mouse.move(bar.x + bar.width * fraction, bar.y + bar.height / 2);
  await page.waitForFunction(() => !document.getElementById("preview").hidden, null, { timeout: 10000 });
  return box(page, "#preview");
}

// Chromium as a browser that refuses to start a video with sound before a click.
const strict = await launch({ args: ["--autoplay-policy=document-user-activation-required"] });
await runAndReport(strict, report, async () => {
  const page = await open(strict, "ready", plan.ready);
  const ready = (report.ready = {});
  ready.ranges = await page.locator("input[type=range]:visible").count();
  ready.nativeControls = await page.evaluate(() => document.getElementById("video").controls);
  ready.mutedAtStart = await page.evaluate(() => document.getElementById("video").muted);
  ready.unmuteShown = await page.locator("#unmute").isVisible();
  await finish(page, "ready-muted");
  await page.click("#unmute");
  ready.mutedAfterClick = await page.evaluate(() => document.getElementById("video").muted);
  ready.unmuteAfterClick = await page.locator("#unmute").isVisible();
  const download = page.locator("#download");
  ready.download = { href: await download.getAttribute("href"), attribute: await download.getAttribute("download") };
  ready.downloadStatus = (await page.request.get(await download.evaluate((a) => a.href))).status();
  ready.player = await box(page, "#player");
  ready.previews = [await previewAt(page, 0.995), await previewAt(page, 0.005)];
  await finish(page, "ready");
});

const free = await launch({ autoplay: true });
const second = { console: report.console, axe: report.axe };
await runAndReport(free, second, async () => {
  const page = await open(free, "transcoding", plan.transcoding);
  const seen = (second.transcoding = {});
  seen.muted = await page.evaluate(() => document.getElementById("video").muted);
  seen.unmuteShown = await page.locator("#unmute").isVisible();
  seen.clock = await page.locator("#clock").innerText();
  seen.track = (await box(page, ".seek .track")).width;
  seen.published = (await box(page, "#published")).width;
  // Ask for 95 % of the title, well past the published part.
  const bar = await box(page, "#seek");
  await page.mouse.click(bar.x + bar.width * 0.95, bar.y + bar.height / 2);
  await page.waitForFunction(() => !document.getElementById("seeknote").hidden, null, { timeout: 10000 });
  seen.note = await page.locator("#seeknote").innerText();
  seen.after = await page.evaluate(() => {
    const video = document.getElementById("video");
    return {
      currentTime: video.currentTime, end: video.seekable.length ? video.seekable.end(0) : 0,
      thumb: document.getElementById("seek").value / 1000,
    };
  });
  await finish(page, "transcoding");

  const portrait = await open(free, "portrait", plan.portrait);
  const tall = (second.portrait = {});
  tall.options = await portrait.locator("#quality option").allInnerTexts();
  for (const size of [{ width: 1280, height: 800 }, { width: 390, height: 844 }]) {
    await portrait.setViewportSize(size);
    tall[size.width] = { video: await box(portrait, "#video"), controls: await box(portrait, "#controls") };
  }
  await finish(portrait, "portrait");
});
