// The watch page: hls.js where Media Source Extensions exist, native HLS (Safari/iOS) otherwise,
// the page's own controls (one seek bar over the whole title, play, mute, quality, full screen),
// and thumbnail previews over the seek bar from the sprite + WebVTT track.
// Opened before the video is ready, it polls the asset's status, shows the queue place or the
// progress, and starts playing by itself as soon as a (provisional) master exists: no reload.
// A failed or cancelled upload shows why, and the page stops asking.
(function () {
  "use strict";
  var POLL_MS = 1500;
  var root = document.getElementById("player");
  var video = document.getElementById("video");
  var quality = document.getElementById("quality");
  var levelLabel = document.getElementById("level");
  var seek = document.getElementById("seek");
  var seekbar = document.getElementById("seekbar");
  var preview = document.getElementById("preview");
  var publishedBar = document.getElementById("published");
  var seekNote = document.getElementById("seeknote");
  var clock = document.getElementById("clock");
  var playButton = document.getElementById("play");
  var muteButton = document.getElementById("mute");
  var unmuteButton = document.getElementById("unmute");
  var master = root.dataset.master;
  // The title's length as the catalog probed it from the upload: the seek bar spans all of
  // it while only its first part is published.
  var titleSeconds = parseFloat(root.dataset.seconds) || 0;
  var FINAL = { ready: true, failed: true, cancelled: true };
  // Read by the browser test and handy in a console: what played, and which levels were used.
  var state = (window.nebulaPlayer = {
    mode: null, switches: [], levels: [], hls: null, errors: [], status: root.dataset.state,
    polls: 0,
  });

  // A rung by its short side, as the transcoder names it: 1080x1920 is "1080p".
  function rungLabel(level) {
    var side = level.width && level.height ? Math.min(level.width, level.height) : level.height;
    return side ? side + "p" : "";
  }

  function showLevel(index, level) {
    levelLabel.textContent = level ? rungLabel(level) : "";
    state.switches.push({ level: index, height: (level && level.height) || null, at: video.currentTime });
  }

  // ---- sound: on where the browser lets a page start with it, else one obvious button --------
  function playWithSound() {
    video.muted = false;
    video.play().then(showSound, function (error) {
      if (!error || error.name !== "NotAllowedError") return;
      video.muted = true; // allowed without a gesture; the button asks for the sound
      video.play().catch(function () {});
      unmuteButton.hidden = false;
    });
  }

  function showSound() {
    muteButton.textContent = video.muted ? "Unmute" : "Mute";
    muteButton.setAttribute("aria-pressed", video.muted ? "true" : "false");
    if (!video.muted) unmuteButton.hidden = true;
  }

  unmuteButton.addEventListener("click", function () {
    video.muted = false;
    unmuteButton.hidden = true;
    video.play().catch(function () {});
  });
  muteButton.addEventListener("click", function () { video.muted = !video.muted; });
  video.addEventListener("volumechange", showSound);

  playButton.addEventListener("click", function () {
    if (video.paused) video.play().catch(function () {});
    else video.pause();
  });
  function showPlaying() { playButton.textContent = video.paused ? "Play" : "Pause"; }
  video.addEventListener("play", showPlaying);
  video.addEventListener("pause", showPlaying);
  video.addEventListener("click", function () { playButton.click(); });

  document.getElementById("fullscreen").addEventListener("click", function () {
    if (document.fullscreenElement) document.exitFullscreen();
    else if (root.requestFullscreen) root.requestFullscreen().catch(function () {});
  });

  // ---- playback ------------------------------------------------------------------------------
  function startHlsJs() {
    // From the start even while the playlists still grow (hls.js would join them at their
    // live edge otherwise): a viewer of a fresh upload wants to see it from its beginning.
    var hls = new Hls({ capLevelToPlayerSize: false, startPosition: 0 });
    state.mode = "hls.js";
    state.hls = hls;
    hls.on(Hls.Events.MANIFEST_PARSED, function (_event, data) {
      state.levels = data.levels.map(function (l) {
        return { height: l.height, width: l.width, bitrate: l.bitrate, label: rungLabel(l) };
      });
      data.levels.forEach(function (level, index) {
        var option = document.createElement("option");
        option.value = String(index);
        option.textContent = (rungLabel(level) || "level " + index) +
          " (" + Math.round(level.bitrate / 1000) + " kbit/s)";
        quality.appendChild(option);
      });
      playWithSound();
    });
    hls.on(Hls.Events.LEVEL_SWITCHED, function (_event, data) {
      showLevel(data.level, hls.levels[data.level]);
    });
    hls.on(Hls.Events.ERROR, function (_event, data) {
      state.errors.push(data.details);
      if (!data.fatal) return;
      if (data.type === Hls.ErrorTypes.NETWORK_ERROR) hls.startLoad();
      else if (data.type === Hls.ErrorTypes.MEDIA_ERROR) hls.recoverMediaError();
    });
    quality.addEventListener("change", function () {
      // currentLevel flushes the buffer and switches now; -1 gives the choice back to ABR.
      hls.currentLevel = parseInt(quality.value, 10);
    });
    hls.loadSource(master);
    hls.attachMedia(video);
  }

  function startNative() {
    state.mode = "native";
    quality.disabled = true; // Safari picks the variant itself
    video.src = master;
    playWithSound();
  }

  function start() {
    if (state.mode) return;
    waiting.hidden = true;
    // hls.js first: some desktop browsers now claim native HLS but give no level control.
    if (window.Hls && Hls.isSupported()) startHlsJs();
    else if (video.canPlayType("application/vnd.apple.mpegurl")) startNative();
    else { state.mode = "none"; levelLabel.textContent = "This browser cannot play HLS."; }
  }

  // ---- a video not ready yet: queue place, progress, and play once there is a master --------
  var waiting = document.getElementById("waiting");
  var statusLabel = document.getElementById("status");
  var durationLabel = document.getElementById("duration");

  function pollStatus() {
    fetch(root.dataset.api, { cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (asset) {
        state.polls += 1;
        if (asset && show(asset)) { state.polling = false; return; } // final: nothing will change
        setTimeout(pollStatus, POLL_MS);
      })
      .catch(function () { setTimeout(pollStatus, POLL_MS); });
  }

  // Shows the asset's state; true once it is final (ready, failed or cancelled).
  function show(asset) {
    state.status = asset.status;
    statusLabel.textContent = asset.status_text;
    durationLabel.textContent = Nebula.formatDuration(asset.duration);
    if (asset.duration) titleSeconds = asset.duration;
    if (asset.playable) start();
    else { waiting.textContent = asset.notice; waiting.hidden = false; }
    if (asset.status === "ready") loadThumbnails();
    if (!asset.playable && FINAL[asset.status]) root.classList.add("broken");
    drawPosition();
    return !!FINAL[asset.status];
  }

  if (root.dataset.playable === "true") start();
  state.polling = !FINAL[root.dataset.state];
  if (state.polling) pollStatus();

  // ---- one seek bar: the whole title, what is published so far, and where we are -----------
  function titleLength() {
    if (titleSeconds) return titleSeconds;
    return isFinite(video.duration) ? video.duration : 0;
  }

  // How far one can play: all of a ready title, the published part of one being transcoded.
  function publishedEnd() {
    // A complete ladder: this upload's, or the previous one's after a failed upload over it.
    if (state.status === "ready" || state.status === "failed") return titleLength();
    var ranges = video.seekable;
    var end = ranges.length ? ranges.end(ranges.length - 1) : 0;
    return isFinite(end) ? end : 0;
  }

  // "0:00" at the start too (formatDuration says "-" for an unknown duration).
  function clockText(seconds) { return Nebula.formatDuration(Math.max(seconds || 0, 0.001)); }

  function fractionOf(seconds) {
    var total = titleLength();
    return total ? Math.min(seconds / total, 1) : 0;
  }

  function drawPosition() {
    publishedBar.style.width = fractionOf(publishedEnd()) * 100 + "%";
    if (document.activeElement !== seek) {
      seek.value = String(Math.round(fractionOf(video.currentTime) * 1000));
    }
    clock.textContent = clockText(video.currentTime) +
      " / " + Nebula.formatDuration(titleLength());
    seek.setAttribute("aria-valuetext", clock.textContent);
  }
  ["timeupdate", "durationchange", "progress", "loadedmetadata"].forEach(function (name) {
    video.addEventListener(name, drawPosition);
  });

  seek.addEventListener("input", function () {
    var total = titleLength();
    if (!total) return;
    var wanted = (seek.value / 1000) * total;
    var end = publishedEnd();
    if (wanted > end) {
      // Past what is published: stay at its end and say why, rather than freeze.
      seekNote.textContent = "Only the first " + Nebula.formatDuration(end) +
        " is ready to watch; the rest is still being transcoded.";
      seekNote.hidden = false;
      state.refusedSeek = wanted;
      wanted = Math.max(end - 1, 0);
      seek.value = String(Math.round(fractionOf(wanted) * 1000)); // the thumb comes back too
    } else {
      seekNote.hidden = true;
    }
    video.currentTime = wanted;
  });

  // ---- thumbnail previews over the seek bar ---------------------------------------------------
  var cues = [];

  function parseTime(text) {
    var parts = text.trim().split(":").map(parseFloat);
    return parts.reduce(function (total, part) { return total * 60 + part; }, 0);
  }

  function parseVtt(text, base) {
    var lines = text.split(/\r?\n/);
    for (var i = 0; i < lines.length - 1; i++) {
      if (lines[i].indexOf("-->") < 0) continue;
      var span = lines[i].split("-->");
      var target = new URL(lines[i + 1].trim(), base);
      var xywh = /#xywh=(\d+),(\d+),(\d+),(\d+)/.exec(target.hash);
      target.hash = "";
      cues.push({
        start: parseTime(span[0]), end: parseTime(span[1].trim().split(" ")[0]),
        image: target.toString(),
        box: xywh ? xywh.slice(1).map(Number) : null,
      });
    }
  }

  var thumbnailsLoaded = false;

  function loadThumbnails() {
    // The track is published with the finished ladder.
    if (thumbnailsLoaded) return;
    thumbnailsLoaded = true;
    var thumbnails = new URL(root.dataset.thumbnails, window.location.href);
    fetch(thumbnails).then(function (r) { return r.ok ? r.text() : ""; })
      .then(function (text) { if (text) parseVtt(text, thumbnails); })
      .catch(function () {});
  }

  // Ready, or failed over a ready video whose previous ladder (thumbnails too) still plays.
  if (root.dataset.state === "ready" || (root.dataset.state === "failed" && root.dataset.playable === "true")) loadThumbnails();

  function cueAt(seconds) {
    for (var i = 0; i < cues.length; i++) {
      if (seconds >= cues[i].start && seconds < cues[i].end) return cues[i];
    }
    return cues.length ? cues[cues.length - 1] : null;
  }

  function secondsAt(event) {
    var rect = seek.getBoundingClientRect();
    var fraction = Math.min(Math.max((event.clientX - rect.left) / rect.width, 0), 1);
    return { fraction: fraction, seconds: fraction * titleLength(), width: rect.width };
  }

  seek.addEventListener("mousemove", function (event) {
    var at = secondsAt(event);
    var cue = cueAt(at.seconds);
    if (!cue || !isFinite(at.seconds)) { preview.hidden = true; return; }
    var frame = preview.querySelector(".frame");
    frame.style.backgroundImage = "url(" + JSON.stringify(cue.image) + ")";
    if (cue.box) {
      frame.style.width = cue.box[2] + "px";
      frame.style.height = cue.box[3] + "px";
      frame.style.backgroundPosition = -cue.box[0] + "px " + -cue.box[1] + "px";
    }
    preview.querySelector(".time").textContent = clockText(at.seconds);
    preview.hidden = false;
    // Centred over the pointer, but never past either end of the bar (nor out of the player).
    var half = preview.offsetWidth / 2;
    var x = Math.min(Math.max(at.fraction * at.width, half), Math.max(at.width - half, half));
    preview.style.left = x + "px";
  });

  seekbar.addEventListener("mouseleave", function () { preview.hidden = true; });
})();
