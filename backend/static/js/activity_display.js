/* The full-screen rotating check-in code (templates/activity_display.html). */
(function () {
  "use strict";
  // What the page needs from the server comes in data attributes: no inline script, so
  // the page's Content-Security-Policy allows scripts from this server only.
  var activityId = document.body.getAttribute("data-activity-id");
  var header = document.body.getAttribute("data-key-header");
  var storeKey = "display-key-" + activityId;
  var match = /(?:^#|&)key=([^&]+)/.exec(window.location.hash);
  var key = match ? decodeURIComponent(match[1]) : sessionStorage.getItem(storeKey);
  if (match) {
    // Keep the key out of the address bar (and so out of a photo of the screen).
    sessionStorage.setItem(storeKey, key);
    history.replaceState(null, "", window.location.pathname);
  }
  var $ = function (id) { return document.getElementById(id); };
  var bar = $("bar").firstElementChild;
  var timer = null;

  function say(text) { $("message").textContent = text || ""; }

  function time(iso) {
    return iso.slice(5, 10).replace("-", "月") + "日 " + iso.slice(11, 16);
  }

  function animate(seconds) {
    bar.style.transition = "none";
    bar.style.transform = "scaleX(1)";
    void bar.offsetWidth;
    bar.style.transition = "transform " + seconds + "s linear";
    bar.style.transform = "scaleX(0)";
  }

  function show(data) {
    $("title").textContent = data.title;
    $("window").textContent = "签到时间 " + time(data.checkin_opens_at) + " 至 " +
      time(data.checkin_closes_at);
    $("code").innerHTML = data.svg;  // made by this server from its own URL
    $("count").textContent = "已签到 " + data.checked_in + " 人" +
      (data.capacity ? "（限 " + data.capacity + " 人）" : "");
    var states = {upcoming: "签到尚未开始，" + time(data.checkin_opens_at) + " 起可扫码",
                  closed: "签到已结束", cancelled: "活动已取消"};
    say(states[data.status] || "");
  }

  function schedule(seconds) {
    clearTimeout(timer);
    timer = setTimeout(refresh, Math.max(1, seconds) * 1000);
  }

  function refresh() {
    fetch("/api/v1/activities/" + activityId + "/qr-token?svg=1", {
      headers: (function () { var h = {}; h[header] = key; return h; })(),
      cache: "no-store", referrerPolicy: "no-referrer"
    }).then(function (response) {
      return response.json().then(function (body) { return [response.status, body]; });
    }).then(function (pair) {
      var status = pair[0], body = pair[1];
      if (status !== 200) {
        // The key expired, or the activity was cancelled: a new link is needed.
        $("code").innerHTML = "";
        say((body.error && body.error.message) || "展示链接已失效");
        if (status >= 500) { schedule(5); }
        return;
      }
      show(body);
      if (body.refresh_at) {
        var wait = (Date.parse(body.refresh_at) - Date.parse(body.server_time)) / 1000;
        animate(wait);
        schedule(wait + 0.3);
      } else {
        bar.style.transform = "scaleX(1)";
        schedule(30);  // a static code does not change; the count does
      }
    }).catch(function () {
      // Keep showing the last code (it stays valid for one more step) and try again.
      say("网络连接中断，正在重试…");
      schedule(5);
    });
  }

  $("full").addEventListener("click", function () {
    if (document.documentElement.requestFullscreen) {
      document.documentElement.requestFullscreen();
    }
    if (navigator.wakeLock) { navigator.wakeLock.request("screen").catch(function () {}); }
  });

  if (!key) {
    say("请在村务积分管理后台点击“打开展示页”，用生成的链接打开本页");
    return;
  }
  refresh();
})();
