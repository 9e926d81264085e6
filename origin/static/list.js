// The list page keeps itself current: every few seconds it asks /api/assets and updates each
// card's status (with the progress of a transcode), its link and poster once there is
// something to watch, adds new uploads and removes deleted videos. Links and posters come
// from the API only, so with signed URLs on the page still hands out no access.
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
    card.append(element("div", "noposter"), element("div", "title"), meta);
    return card;
  }

  function update(card, asset) {
    card.className = "asset " + asset.status;
    card.querySelector(".status").textContent = asset.status_text;
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
      ? current.length === wanted.length && wanted.every(function (card, i) { return current[i] === card; })
      : current.length === 1 && current[0].className === "empty";
    if (!same) {
      // Newest first, as the server renders it; cards that stay keep their images.
      if (wanted.length) list.replaceChildren.apply(list, wanted);
      else {
        var empty = element("li", "empty");
        empty.textContent = "No videos yet.";
        list.replaceChildren(empty);
      }
    }
    count.textContent = assets.length === 1 ? "1 video" : assets.length + " videos";
  }

  function poll() {
    var again = true;
    fetch("/api/assets", { cache: "no-store" })
      .then(function (r) {
        // 403: signed playback is on and the list needs a token this page does not have.
        if (r.status === 403) again = false;
        return r.ok ? r.json() : null;
      })
      .then(function (data) { if (data) render(data.assets); })
      .catch(function () {})
      .finally(function () { if (again) setTimeout(poll, POLL_MS); });
  }

  setTimeout(poll, POLL_MS);
})();
