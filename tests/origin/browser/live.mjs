// Opens the watch page of a video still transcoding in Debian's chromium and follows it to
// the end: one JSON line on stdout with every hls.js error (details, fatal) and where the
// video stopped. Usage: node live.mjs <watch-url>
import { captureConsole, launch } from "./chromium.mjs";

const url = process.argv[2];

const browser = await launch({ autoplay: true });
const report = { url, console: [] };
try {
  const page = await browser.newPage();
  captureConsole(page, report.console, { pageErrors: true });
  await page.goto(url, { waitUntil: "load", timeout: 30000 });
  // hls.js is made once the page sees a master; listen to it from then on (the page's own
  // list, nebulaPlayer.errors, keeps the details of anything seen before).
  await page.waitForFunction(() => window.nebulaPlayer.hls, null, { timeout: 60000 });
  await page.evaluate(() => {
    const video = document.getElementById("video");
    const hls = window.nebulaPlayer.hls;
    // Whether the first media playlist hls.js read was live (no ENDLIST): the transcode
    // was still running when the player joined. A playlist only ever gains its ENDLIST,
    // so one already loaded and live means the first was live too.
    const loaded = hls.levels.find((level) => level.details);
    window.liveReport = {
      errors: [], ended: false, waiting: 0, liveAtJoin: loaded ? loaded.details.live : null,
    };
    hls.on(Hls.Events.LEVEL_LOADED, (_event, data) => {
      if (window.liveReport.liveAtJoin === null) window.liveReport.liveAtJoin = data.details.live;
    });
    hls.on(Hls.Events.ERROR, (_event, data) =>
      window.liveReport.errors.push({ details: data.details, fatal: data.fatal }));
    video.addEventListener("ended", () => { window.liveReport.ended = true; });
    video.addEventListener("waiting", () => { window.liveReport.waiting += 1; });
  });
  // Played to the end: `ended`, or within a second of a (finite, final) duration.
  await page.waitForFunction(() => {
    const video = document.getElementById("video");
    return window.liveReport.ended ||
      (Number.isFinite(video.duration) && video.currentTime >= video.duration - 1);
  }, null, { timeout: 180000, polling: 250 });
  report.result = await page.evaluate(() => ({
    ...window.liveReport,
    pageErrors: window.nebulaPlayer.errors,
    currentTime: document.getElementById("video").currentTime,
    duration: document.getElementById("video").duration,
    mode: window.nebulaPlayer.mode,
  }));
  report.ok = true;
} catch (error) {
  report.ok = false;
  report.error = String(error);
  try {
    report.result = await browser.contexts()[0].pages()[0].evaluate(() => ({
      ...window.liveReport, pageErrors: window.nebulaPlayer.errors,
      currentTime: document.getElementById("video").currentTime,
      duration: document.getElementById("video").duration,
    }));
  } catch (_) { /* the page is gone: the error says why */ }
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
