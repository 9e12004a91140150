// page_script.cpp: GET /js/unsubscribe.js, the CleverTap page contract.
//
// A page written for CleverTap's SES / SMTP flow calls $WZRK_WR.getEmail()
// on load and expects wzrk_email_fetched(emailStr) back, then
// $WZRK_WR.unSubEmail() / $WZRK_WR.subEmail() (through its own unsubscribe()
// and resubscribe()), and wzrk_email_subscription(status) after each (0:
// unsubscribed, 1: subscribed). This script gives such a page the same
// functions against the relay's token API, so only its script tag changes.
// The token is the page address's `e` parameter (PAGE_URL?e=TOKEN) or its
// /u/TOKEN path; the API is wherever the script itself was loaded from.
#include "unsubrelay/http/service.hpp"

namespace unsubrelay::http {

namespace {

constexpr const char* script = R"JS(/* unsubscribe.js (unsubrelay): CleverTap's unsubscribe page functions, against this relay. */
(function () {
  'use strict';
  var here = document.currentScript && document.currentScript.src;
  var api = here ? here.replace(/\/js\/unsubscribe\.js([?#].*)?$/, '') : '';
  var status = { email: null, subscribed: null, error: null };

  function token() {
    var query = /[?&]e=([A-Za-z0-9_-]+)/.exec(window.location.search);
    if (query) return query[1];
    var path = /\/u\/([A-Za-z0-9_-]+)/.exec(window.location.pathname);
    return path ? path[1] : '';
  }

  function callback(name, value) {
    if (typeof window[name] === 'function') window[name](value);
  }

  function failed(message) {
    status.error = message;
    if (window.console) window.console.error('unsubscribe.js: ' + message);
    callback('wzrk_email_error', message);
  }

  // One call to the relay; done(json) on 2xx, else the page hears why.
  function call(method, path, done) {
    var t = token();
    if (!t) return failed('no token in this page\'s address (expected ?e=TOKEN or /u/TOKEN)');
    var xhr = new XMLHttpRequest();
    xhr.open(method, api + '/api/v1/tokens/' + t + path, true);
    xhr.onload = function () {
      var body = null;
      try { body = JSON.parse(xhr.responseText); } catch (e) { body = null; }
      if (xhr.status >= 200 && xhr.status < 300 && body) return done(body);
      failed((body && body.error) || ('the relay answered ' + xhr.status));
    };
    xhr.onerror = function () { failed('the relay could not be reached'); };
    xhr.send();
  }

  function changed(body) {
    status.subscribed = body.status !== 'unsubscribed';
    callback('wzrk_email_subscription', status.subscribed ? 1 : 0);
  }

  var wr = window.$WZRK_WR || {};
  wr.getEmail = function () {
    call('GET', '', function (body) {
      status.email = body.email;
      status.subscribed = body.status !== 'unsubscribed';
      callback('wzrk_email_fetched', body.email);
    });
  };
  wr.unSubEmail = function () { call('POST', '/unsubscribe', changed); };
  wr.subEmail = function () { call('POST', '/resubscribe', changed); };
  wr.status = status;
  window.$WZRK_WR = wr;
  // CleverTap's template defines these itself (and calls the two above); a
  // page that only calls them gets these.
  if (typeof window.unsubscribe !== 'function') window.unsubscribe = function () { wr.unSubEmail(); };
  if (typeof window.resubscribe !== 'function') window.resubscribe = function () { wr.subEmail(); };
})();
)JS";

}  // namespace

Response Service::page_script(const Request& r) {
  Response out{200, "text/javascript; charset=utf-8", script, {{"Cache-Control", "public, max-age=3600"},
                                                              {"X-Content-Type-Options", "nosniff"}}};
  add_cors(r, out);  // for a page on page_origins that loads it with crossorigin
  return out;
}

}  // namespace unsubrelay::http
