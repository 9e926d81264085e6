// Opens the watch page in Debian's chromium and reports, as one JSON line, what played:
// currentTime samples, the hls.js levels, and the level switches seen after picking another
// quality in the page's menu. Usage: node watch.mjs <watch-url>
import { captureConsole, launch, runAndReport } from "./chromium.mjs";

const url = process.argv[2];

const browser = await launch({ autoplay: true });
const report = { url, console: [] };
await runAndReport(browser, report, async () => {
  const page = await browser.newPage();
  captureConsole(page, report.console, { pageErrors: true });
  await page.goto(url, { waitUntil: "load", timeout: 30000 });
  const player = () => page.evaluate(() => ({
    mode: window.nebulaPlayer.mode,
    levels: window.nebulaPlayer.levels,
    switches: window.nebulaPlayer.switches,
    errors: window.nebulaPlayer.errors,
    currentTime: document.getElementById("video").currentTime,
    paused: document.getElementById("video").paused,
  }));
  await page.waitForFunction(() => document.getElementById("video").currentTime > 0.5, null, { timeout: 45000 });
  report.before = await player();
  // Pick the level that is not playing now, through the page's own quality menu.
  const current = report.before.switches.length ? report.before.switches.at(-1).level : 0;
  const target = current === 0 ? 1 : 0;
  await page.selectOption("#quality", String(target));
  await page.waitForFunction(
    (level) => window.nebulaPlayer.switches.some((s) => s.level === level), target, { timeout: 30000 });
  const switchedAt = (await player()).currentTime;
  await page.waitForFunction(
    (t) => document.getElementById("video").currentTime > t + 0.5, switchedAt, { timeout: 30000 });
  report.target = target;
  report.after = await player();
  // Hovering the seek bar shows the thumbnail of that moment, cut from the sprite.
  const box = await page.locator("#seek").boundingBox();
  await page.mouse.move(box.x + box.width * 0.6, box.y + box.height / 2);
  await page.waitForFunction(() => !document.getElementById("preview").hidden, null, { timeout: 10000 });
  report.preview = await page.evaluate(() => {
    const frame = document.querySelector("#preview .frame");
    return { image: frame.style.backgroundImage, position: frame.style.backgroundPosition,
             width: frame.style.width, time: document.querySelector("#preview .time").textContent,
             left: document.getElementById("preview").style.left };
  });
  // At the very end of the bar the preview still sits inside the player.
  await page.mouse.move(box.x + box.width - 1, box.y + box.height / 2);
  await page.waitForFunction(
    (before) => document.getElementById("preview").style.left !== before,
    report.preview.left, { timeout: 10000 });
  report.edge = await page.evaluate(() => {
    const rect = (id) => document.getElementById(id).getBoundingClientRect().toJSON();
    return { preview: rect("preview"), player: rect("player"), video: rect("video") };
  });
});
