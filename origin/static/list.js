// The list page keeps itself current: every few seconds it asks /api/assets and updates each
// card's status (with the progress of a transcode), its link and poster once there is
// something to watch, adds new uploads and removes deleted videos. Links and posters come
// from the API only, so with signed URLs on the page still hands out no access.
// Search (title or folder), sort (added, name, duration) and the status filter work on the
// cards' data attributes, in the page: with signing on too, where the page cannot poll.
(function () {
  "use strict";
  var POLL_MS = 2000;
  var list = document.querySelector("ul.assets");
  var count = document.querySelector("header .count");

  function element(tag, className) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    return node;
  }

  function newCard(id) {
    var card = element("li");
    card.dataset.id = id;
    var meta = element("div", "meta");
    meta.append(element("span", "duration"), " ", element("span", "status"));
    card.append(element("div", "noposter"), element("div", "title"), element("div", "folder"), meta);
    return card;
  }

  function update(card, asset) {
    card.className = "asset " + asset.status;
    card.dataset.title = asset.title;
    card.dataset.folder = asset.bucket + "/" + asset.folder;
    card.dataset.added = asset.created_at;
    card.dataset.duration = String(asset.duration || 0);
    card.dataset.status = asset.status;
    breadcrumbs(card);
    var status = card.querySelector(".status");
    status.textContent = asset.status_text;
    status.title = asset.status_text;
    card.querySelector(".duration").textContent = Nebula.formatDuration(asset.duration);
    var title = card.querySelector(".title");
    var link = title.querySelector("a");
    if (asset.watch) {
      if (!link) { link = element("a"); title.replaceChildren(link); }
      link.href = asset.watch;
      link.textContent = asset.title;
    } else if (link || title.textContent !== asset.title) {
      title.textContent = asset.title;
    }
    var picture = card.firstElementChild;
    if (asset.poster && picture.tagName !== "IMG") {
      var image = element("img");
      image.src = asset.poster;
      image.alt = "";
      image.loading = "lazy";
      card.replaceChild(image, picture);
    }
  }

  // ---- search, sort and filter, on the cards in the page ---------------------------------
  var search = document.getElementById("search");
  var sort = document.getElementById("sort");
  var filter = document.getElementById("filter");
  var shown = document.getElementById("shown");
  var GROUPS = {
    ready: ["ready", "playable"],
    transcoding: ["queued", "processing", "playable"],
    failed: ["failed", "cancelled"],
  };
  var ORDER = {
    added: function (a, b) { return a.dataset.added < b.dataset.added ? 1 : a.dataset.added > b.dataset.added ? -1 : 0; },
    name: function (a, b) { return a.dataset.title.localeCompare(b.dataset.title) || a.dataset.folder.localeCompare(b.dataset.folder); },
    duration: function (a, b) { return parseFloat(b.dataset.duration) - parseFloat(a.dataset.duration); },
  };

  function matches(card, words, statuses) {
    if (statuses && statuses.indexOf(card.dataset.status) < 0) return false;
    var text = (card.dataset.title + " " + card.dataset.folder).toLowerCase();
    return words.every(function (word) { return text.indexOf(word) >= 0; });
  }

  function arrange() {
    var cards = Array.prototype.slice.call(list.querySelectorAll("li[data-id]"));
    if (!cards.length) { shown.textContent = ""; return; }
    var words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    var statuses = GROUPS[filter.value] || null;
    var visible = 0;
    cards.forEach(function (card) {
      card.hidden = !matches(card, words, statuses);
      if (!card.hidden) visible += 1;
    });
    var sorted = cards.slice().sort(ORDER[sort.value] || ORDER.added);
    if (sorted.some(function (card, i) { return cards[i] !== card; })) list.replaceChildren.apply(list, sorted);
    shown.textContent = visible === cards.length ? "" : "showing " + visible + " of " + cards.length;
  }

  // The card's folder as breadcrumbs: each step shows that folder (and the ones under it).
  function breadcrumbs(card) {
    var place = card.querySelector(".folder");
    if (place.dataset.folder === card.dataset.folder) return;
    place.dataset.folder = card.dataset.folder;
    var path = "";
    var steps = card.dataset.folder.split("/").filter(Boolean).map(function (name) {
      path += name + "/";
      var button = element("button", "crumb");
      button.type = "button";
      button.textContent = name;
      button.dataset.folder = path;
      button.setAttribute("aria-label", "Show the folder " + path);
      return button;
    });
    place.replaceChildren();
    steps.forEach(function (step) { place.append(step, "/"); });
  }

  list.addEventListener("click", function (event) {
    var crumb = event.target.closest("button.crumb");
    if (!crumb) return;
    search.value = crumb.dataset.folder;
    arrange();
  });
  Array.prototype.forEach.call(list.querySelectorAll("li[data-id]"), breadcrumbs);

  search.addEventListener("input", arrange);
  sort.addEventListener("change", arrange);
  filter.addEventListener("change", arrange);

  function render(assets) {
    var cards = {};
    Array.prototype.forEach.call(list.querySelectorAll("li[data-id]"), function (card) {
      cards[card.dataset.id] = card;
    });
    var wanted = assets.map(function (asset) {
      var card = cards[asset.id] || newCard(asset.id);
      update(card, asset);
      return card;
    });
    var current = Array.prototype.slice.call(list.children);
    var same = wanted.length
      ? current.length === wanted.length && wanted.every(function (card) { return card.parentNode === list; })
      : current.length === 1 && current[0].className === "empty";
    if (!same) {
      // Cards that stay keep their images; arrange() puts them in the chosen order.
      if (wanted.length) list.replaceChildren.apply(list, wanted);
      else {
        var empty = element("li", "empty");
        empty.textContent = "No videos yet.";
        list.replaceChildren(empty);
      }
    }
    arrange();
  }

  function poll() {
    var again = true;
    fetch("/api/assets", { cache: "no-store" })
      .then(function (r) {
        // 403: signed playback is on and the list needs a token this page does not have.
        if (r.status === 403) again = false;
        return r.ok ? r.json() : null;
      })
      .then(function (data) {
        if (!data) return;
        render(data.assets);
        count.textContent = data.summary;
      })
      .catch(function () {})
      .finally(function () { if (again) setTimeout(poll, POLL_MS); });
  }

  setTimeout(poll, POLL_MS);
})();
