// Opens the watch page and the list page of a video that is still transcoding, in Debian's
// chromium, and follows them while the test publishes its ladder: one JSON line per step on
// stdout; the test answers each with a line on stdin once it has done its part.
//   opened     both pages loaded, what they show          <- test publishes the first segments
//   playing    the video plays (currentTime advances)     <- test publishes the rest, marks ready
//   done       the list says ready; the video played past the first segments; no reload
// Usage: node early.mjs <origin-url> <asset-id>
import { createInterface } from "node:readline";
import { captureConsole, launch } from "./chromium.mjs";

const [origin, assetId] = process.argv.slice(2);
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const say = (step, data) => console.log(JSON.stringify({ step, ...data }));
// PLAYER_SCREENSHOTS=<dir>: a picture of both pages at each step, to look at by hand.
const shots = process.env.PLAYER_SCREENSHOTS;
const snap = async (step, pages) => {
  if (!shots) return;
  for (const [name, page] of Object.entries(pages)) {
    await page.screenshot({ path: `${shots}/${step}-${name}.png` });
  }
};
const proceed = async () => (await lines.next()).value;

const browser = await launch({ autoplay: true });
const report = { console: [] };
try {
  const watch = await browser.newPage();
  const list = await browser.newPage();
  for (const page of [watch, list]) {
    captureConsole(page, report.console, { pageErrors: true });
  }
  await watch.goto(`${origin}/watch/${assetId}`, { waitUntil: "load", timeout: 30000 });
  await list.goto(`${origin}/`, { waitUntil: "load", timeout: 30000 });
  // A reload would lose these: they prove each page kept running.
  for (const page of [watch, list]) await page.evaluate(() => { window.notReloaded = true; });
  const card = `li[data-id="${assetId}"] .status`;
  const seen = () => Promise.all([
    watch.evaluate(() => ({
      status: document.getElementById("status").textContent,
      waiting: !document.getElementById("waiting").hidden,
      mode: window.nebulaPlayer.mode,
      errors: window.nebulaPlayer.errors,
      currentTime: document.getElementById("video").currentTime,
      notReloaded: window.notReloaded === true,
    })),
    list.evaluate((selector) => ({
      status: document.querySelector(selector).textContent,
      notReloaded: window.notReloaded === true,
    }), card),
  ]).then(([w, l]) => ({ watch: w, list: l }));
  say("opened", await seen());
  await snap("opened", { watch, list });

  await proceed();
  await watch.waitForFunction(() => document.getElementById("video").currentTime > 0.5, null, { timeout: 60000 });
  say("playing", await seen());
  await snap("playing", { watch, list });

  await proceed();
  await list.waitForFunction((selector) => document.querySelector(selector).textContent === "ready", card, { timeout: 30000 });
  await watch.waitForFunction(() => document.getElementById("status").textContent === "ready", null, { timeout: 30000 });
  // Past what the first publication held: the growing playlists were followed.
  await watch.waitForFunction(() => document.getElementById("video").currentTime > 5, null, { timeout: 60000 });
  say("done", { ok: true, ...(await seen()), console: report.console });
  await snap("done", { watch, list });
} catch (error) {
  say("done", { ok: false, error: String(error), console: report.console });
} finally {
  await browser.close();
  process.exit(0);
}
