// What the list page and the watch page share.
window.Nebula = {
  // "m:ss" or "h:mm:ss", as the server renders durations (origin/pages.py _duration).
  formatDuration: function (seconds) {
    if (!seconds) return "-";
    var total = Math.round(seconds), secs = total % 60, minutes = Math.floor(total / 60) % 60;
    var hours = Math.floor(total / 3600), pad = function (n) { return (n < 10 ? "0" : "") + n; };
    return hours ? hours + ":" + pad(minutes) + ":" + pad(secs) : minutes + ":" + pad(secs);
  },
};
