/* kefu admin page: plain DOM, no framework, no external resources.
 * Every piece of server data is rendered with textContent / attributes, never innerHTML. */
(function () {
  "use strict";

  var TOKEN_KEY = "kefu.admin.token";
  var REFRESH_MS = 15000;
  var PAGE_SIZE = 50;

  var STATUS_LABELS = {
    "new": "新建",
    "assigned": "已指派",
    "acknowledged": "已接单",
    "in_progress": "处理中",
    "waiting_on_customer": "等待客户",
    "pending_approval": "待审批",
    "resolved": "已解决",
    "closed": "已关闭"
  };
  var STATUSES = Object.keys(STATUS_LABELS);
  var CATEGORY_LABELS = { consultation: "咨询", complaint: "投诉", suggestion: "建议", after_sales: "售后" };
  var TIER_LABELS = { normal: "普通", member: "会员", vip: "VIP" };
  var DELIVERY_LABELS = { queued: "排队中 queued", sent: "已送达 sent", failed: "发送失败 failed" };
  var CLOCK_LABELS = {
    running: "计时中", satisfied: "已达成", breached: "已超时", stopped: "已停止", paused: "已暂停"
  };
  var ACTION_LABELS = {
    created: "创建", create: "创建", ack: "接单", acknowledge: "接单", reply: "回复", replied: "回复",
    note: "备注", assign: "指派", assigned: "指派", start: "开始处理", resolve: "解决", resolved: "解决",
    reopen: "重开", close: "关闭", closed: "关闭", escalated: "升级", escalate: "升级",
    wait_on_customer: "等待客户", request_approval: "申请审批", approve: "审批通过",
    customer_reply: "客户回复", message: "客户消息", linked: "关联工单", merged: "合并",
    delivery_failed: "发送失败", work_order: "工单派发", sla_breached: "时效超时", categorised: "分类",
    routed: "分配路由", status: "状态变更",
    triaged: "智能分诊", reclassified: "人工改分类", tier_changed: "客户等级变更"
  };

  // ---- tiny DOM helpers (text only) ----
  function $(id) { return document.getElementById(id); }
  function el(tag, attrs) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v === undefined || v === null || v === false) return;
        if (k === "text") node.textContent = String(v);
        else if (k === "className") node.className = v;
        else node.setAttribute(k, String(v));
      });
    }
    for (var i = 2; i < arguments.length; i++) {
      var child = arguments[i];
      if (child === null || child === undefined || child === false) continue;
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  function show(node, visible) { node.hidden = !visible; }

  function statusLabel(s) { return (STATUS_LABELS[s] || s || "—"); }
  function localTime(iso) {
    if (!iso) return "—";
    var d = new Date(iso);
    if (isNaN(d.getTime())) return String(iso);
    return d.toLocaleString("zh-CN", { hour12: false, year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }
  function shortTime(iso) {
    if (!iso) return "—";
    var d = new Date(iso);
    if (isNaN(d.getTime())) return String(iso);
    var now = new Date();
    var sameDay = d.toDateString() === now.toDateString();
    return sameDay
      ? d.toLocaleTimeString("zh-CN", { hour12: false, hour: "2-digit", minute: "2-digit" })
      : d.toLocaleString("zh-CN", { hour12: false, month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" });
  }
  function formatDuration(ms) {
    var neg = ms < 0;
    var s = Math.floor(Math.abs(ms) / 1000);
    var d = Math.floor(s / 86400); s -= d * 86400;
    var h = Math.floor(s / 3600); s -= h * 3600;
    var m = Math.floor(s / 60); s -= m * 60;
    var pad = function (n) { return (n < 10 ? "0" : "") + n; };
    var txt = (d ? d + "天 " : "") + pad(h) + ":" + pad(m) + ":" + pad(s);
    return neg ? "-" + txt : txt;
  }
  function safeUrl(url) {
    try {
      var u = new URL(String(url), window.location.href);
      return (u.protocol === "http:" || u.protocol === "https:") ? u.href : null;
    } catch (e) { return null; }
  }

  // ---- state ----
  var state = {
    token: null,
    me: null,
    staff: [],
    items: [],
    nextCursor: null,
    pagesLoaded: 1,
    listSeq: 0,
    selectedId: null,
    ticket: null,
    detailSeq: 0,
    busy: false,
    timer: null,
    clockTimer: null
  };

  // ---- API ----
  function ApiError(status, code, message) {
    this.status = status; this.code = code; this.message = message;
  }
  function api(method, path, body) {
    var headers = { "Accept": "application/json" };
    if (state.token) headers["Authorization"] = "Bearer " + state.token;
    var init = { method: method, headers: headers, cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(path, init).then(function (resp) {
      return resp.text().then(function (raw) {
        var data = null;
        if (raw) { try { data = JSON.parse(raw); } catch (e) { data = null; } }
        if (!resp.ok) {
          var err = (data && data.error) || {};
          var message = err.message || (data && data.message) || raw || resp.statusText || "请求失败";
          throw new ApiError(resp.status, err.code || "http_" + resp.status, String(message));
        }
        return data;
      });
    }, function (e) {
      throw new ApiError(0, "network", "网络错误 Network error: " + (e && e.message ? e.message : e));
    });
  }
  function handleAuthError(err) {
    if (err && err.status === 401) {
      signOut("登录已失效，请重新登录 Session expired or token invalid: " + err.message);
      return true;
    }
    return false;
  }

  // ---- sign in / out ----
  function showSignin(message) {
    show($("app-view"), false);
    show($("whoami"), false);
    show($("signin-view"), true);
    var errBox = $("signin-error");
    errBox.textContent = message || "";
    show(errBox, !!message);
    $("token-input").focus();
  }

  function signIn(token) {
    state.token = token;
    var btn = $("signin-button");
    btn.disabled = true;
    return api("GET", "/api/me").then(function (me) {
      btn.disabled = false;
      state.me = me || {};
      try { sessionStorage.setItem(TOKEN_KEY, token); } catch (e) { /* storage unavailable */ }
      $("token-input").value = "";
      startApp();
    }, function (err) {
      btn.disabled = false;
      state.token = null;
      try { sessionStorage.removeItem(TOKEN_KEY); } catch (e) { /* ignore */ }
      var msg = err.status === 401
        ? "令牌无效或已过期 Invalid or expired token (" + err.message + ")"
        : "登录失败 Sign-in failed: " + err.message;
      showSignin(msg);
    });
  }

  function signOut(message) {
    state.token = null;
    state.me = null;
    state.ticket = null;
    state.selectedId = null;
    state.items = [];
    try { sessionStorage.removeItem(TOKEN_KEY); } catch (e) { /* ignore */ }
    if (state.timer) { clearInterval(state.timer); state.timer = null; }
    clear($("ticket-rows"));
    closeDetail();
    showSignin(message);
  }

  function startApp() {
    var me = state.me;
    $("whoami-name").textContent = me.name || me.id || "";
    var metaBits = [];
    if (me.id) metaBits.push(me.id);
    if (me.roles && me.roles.length) metaBits.push(me.roles.join(", "));
    if (me.team) metaBits.push("团队 " + me.team);
    $("whoami-meta").textContent = metaBits.join(" · ");
    show($("signin-view"), false);
    show($("whoami"), true);
    show($("app-view"), true);
    loadStaff();
    loadList(false);
    var hashId = ticketFromHash();
    if (hashId) selectTicket(hashId);
    if (state.timer) clearInterval(state.timer);
    state.timer = setInterval(autoRefresh, REFRESH_MS);
    loadNotifications();
  }

  // ---- notifications (通知): escalations, SLA warnings, urgent alerts — GET /api/notifications ----
  var notify = { items: [], open: false, timer: null };
  function notifyBell() {
    var bell = $("notify-bell");
    if (bell) return bell;
    bell = el("button", { type: "button", id: "notify-bell", className: "btn btn-ghost notify-bell",
      "data-testid": "notify-bell", "aria-label": "通知 Notifications", "aria-expanded": "false" },
      "🔔", el("span", { id: "notify-count", className: "notify-count", "data-testid": "notify-count", hidden: true }));
    var panel = el("div", { id: "notify-panel", className: "notify-panel", "data-testid": "notify-panel",
      role: "dialog", hidden: true });
    var wrap = el("span", { className: "notify-wrap" }, bell, panel);
    $("whoami").insertBefore(wrap, $("signout"));
    bell.addEventListener("click", function () {
      notify.open = !notify.open;
      bell.setAttribute("aria-expanded", String(notify.open));
      show(panel, notify.open);
      if (notify.open) loadNotifications();
    });
    return bell;
  }
  function renderNotifications() {
    notifyBell();
    var unread = notify.items.filter(function (n) { return !n.read; }).length;
    var count = $("notify-count");
    count.textContent = unread > 9 ? "9+" : String(unread);
    show(count, unread > 0);
    var panel = $("notify-panel");
    clear(panel);
    if (!notify.items.length) {
      panel.appendChild(el("div", { className: "notify-empty muted" }, "暂无通知 No notifications"));
      return;
    }
    var list = el("ol", { className: "notify-list", "data-testid": "notify-list" });
    notify.items.forEach(function (n) {
      var item = el("li", { className: "notify-item" + (n.read ? " read" : ""), "data-testid": "notify-item",
        "data-id": n.id }, el("div", { className: "notify-title" }, n.title || n.kind),
        el("div", { className: "notify-at muted" }, new Date(n.at).toLocaleString()));
      item.addEventListener("click", function () {
        if (!n.read) {
          api("POST", "/api/notifications/" + encodeURIComponent(n.id) + "/read", {}).then(function (updated) {
            n.read = true; n.read_at = updated && updated.read_at; renderNotifications();
          }, function (err) { handleAuthError(err); });
        }
        if (n.ticket_id) window.location.hash = "#/tickets/" + encodeURIComponent(n.ticket_id);
      });
      list.appendChild(item);
    });
    panel.appendChild(list);
  }
  function loadNotifications() {
    if (!state.token) return;
    if (!notify.timer) notify.timer = setInterval(loadNotifications, REFRESH_MS);
    api("GET", "/api/notifications?limit=20").then(function (data) {
      notify.items = (data && data.items) || [];
      renderNotifications();
    }, function (err) { handleAuthError(err); });
  }

  // ---- staff (for assign) ----
  function loadStaff() {
    api("GET", "/api/staff").then(function (data) {
      state.staff = (data && data.items) || [];
      renderStaffSelect();
      syncPresence();
    }, function (err) {
      if (handleAuthError(err)) return;
      state.staff = [];
      renderStaffSelect();
    });
  }
  // ---- presence (在线状态): routing only assigns to staff who are online ----
  function presenceButton() {
    var btn = $("presence-toggle");
    if (!btn) {
      btn = el("button", { type: "button", className: "btn btn-ghost presence", id: "presence-toggle",
        "data-testid": "presence-toggle" });
      btn.addEventListener("click", togglePresence);
      $("whoami").insertBefore(btn, $("signout"));
    }
    return btn;
  }
  function renderPresence(online) {
    var btn = presenceButton();
    state.online = online;
    show(btn, true);
    btn.textContent = online ? "● 在线 Online" : "○ 离线 Offline";
    btn.setAttribute("aria-pressed", online ? "true" : "false");
    btn.title = online ? "点击设为离线 Go offline" : "点击设为在线 Go online";
  }
  function syncPresence() {
    var myId = state.me && state.me.id;
    var mine = state.staff.filter(function (s) { return s.id === myId; })[0];
    if (mine) renderPresence(!!mine.online);
    else if ($("presence-toggle")) show($("presence-toggle"), false);
  }
  function togglePresence() {
    var btn = presenceButton();
    btn.disabled = true;
    api("PUT", "/api/staff/me/presence", { online: !state.online }).then(function (member) {
      btn.disabled = false;
      renderPresence(!!(member && member.online));
      loadStaff();
    }, function (err) {
      btn.disabled = false;
      if (!handleAuthError(err)) btn.title = "切换失败 Failed: " + err.message;
    });
  }
  function renderStaffSelect() {
    var sel = $("assign-select");
    var keep = sel.value;
    clear(sel);
    if (!state.staff.length) {
      show(sel, false);
      show($("assign-input"), true);
      return;
    }
    show(sel, true);
    show($("assign-input"), false);
    sel.appendChild(el("option", { value: "", text: "指派给… Assign" }));
    state.staff.forEach(function (s) {
      var label = (s.name || s.id) + " (" + s.id + ")" + (s.team ? " · " + s.team : "") + (s.online ? " ●在线" : " ○离线");
      sel.appendChild(el("option", { value: s.id, text: label }));
    });
    sel.value = keep;
  }

  // ---- ticket list ----
  function listQuery(cursor) {
    var q = ["limit=" + PAGE_SIZE];
    var status = $("filter-status").value;
    if (status) q.push("status=" + encodeURIComponent(status));
    if ($("filter-mine").checked) q.push("assignee=me");
    if (cursor) q.push("cursor=" + encodeURIComponent(cursor));
    return "/api/tickets?" + q.join("&");
  }

  /* append=false: reload from the first page, re-reading as many pages as were loaded so the
   * user keeps what they scrolled to (auto-refresh); resetPages=true when filters change. */
  function loadList(append, resetPages) {
    var seq = ++state.listSeq;
    if (resetPages) state.pagesLoaded = 1;
    var listStatus = $("list-status");
    if (append) {
      $("load-more").disabled = true;
      return api("GET", listQuery(state.nextCursor)).then(function (data) {
        if (seq !== state.listSeq) return;
        state.items = state.items.concat((data && data.items) || []);
        state.nextCursor = (data && data.next_cursor) || null;
        state.pagesLoaded += 1;
        $("load-more").disabled = false;
        renderList();
      }, function (err) {
        $("load-more").disabled = false;
        if (handleAuthError(err)) return;
        listStatus.textContent = "加载失败 " + err.message;
      });
    }
    var pages = Math.max(1, state.pagesLoaded);
    var collected = [];
    function page(cursor, n) {
      return api("GET", listQuery(cursor)).then(function (data) {
        if (seq !== state.listSeq) return null;
        collected = collected.concat((data && data.items) || []);
        var next = (data && data.next_cursor) || null;
        if (next && n + 1 < pages) return page(next, n + 1);
        return { next: next, loaded: n + 1 };
      });
    }
    listStatus.textContent = state.items.length ? listStatus.textContent : "加载中… Loading";
    return page(null, 0).then(function (res) {
      if (!res || seq !== state.listSeq) return;
      state.items = collected;
      state.nextCursor = res.next;
      state.pagesLoaded = res.loaded;
      renderList();
    }, function (err) {
      if (seq !== state.listSeq) return;
      if (handleAuthError(err)) return;
      listStatus.textContent = "加载失败 Failed to load: " + err.message;
    });
  }

  function badge(text, cls, testid) {
    return el("span", { className: "badge " + cls, text: text, "data-testid": testid });
  }

  function renderList() {
    var tbody = $("ticket-rows");
    clear(tbody);
    state.items.forEach(function (t) {
      var selected = t.id === state.selectedId;
      var tr = el("tr", {
        "data-testid": "ticket-row",
        "data-ticket-id": t.id,
        "data-status": t.status,
        tabindex: "0",
        className: selected ? "selected" : "",
        "aria-selected": selected ? "true" : "false"
      },
        el("td", { className: "mono id-cell", text: t.id, title: t.subject || "" }),
        el("td", { className: "channel-cell", text: t.channel || "—", title: t.channel || "" }),
        el("td", {}, el("span", { className: "status-badge st-" + t.status, text: statusLabel(t.status), title: t.status })),
        el("td", {}, badge(t.priority || "—", "prio prio-" + (t.priority || "none"), "priority")),
        el("td", {}, t.urgent ? badge("紧急", "urgent", "urgent-badge") : null),
        el("td", {}, t.tier === "vip" ? badge("VIP", "vip", "vip-badge")
          : el("span", { className: "muted", text: TIER_LABELS[t.tier] || t.tier || "" })),
        el("td", { text: CATEGORY_LABELS[t.category] || t.category || "—", title: t.category || "" }),
        el("td", { text: t.assignee || "—", className: t.assignee ? "" : "muted" }),
        el("td", { className: "nowrap", text: shortTime(t.created_at), title: localTime(t.created_at) })
      );
      tr.addEventListener("click", function () { selectTicket(t.id); });
      tr.addEventListener("keydown", function (ev) {
        if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); selectTicket(t.id); }
      });
      tbody.appendChild(tr);
    });
    show($("list-empty"), state.items.length === 0);
    show($("load-more"), !!state.nextCursor);
    $("list-status").textContent = "共 " + state.items.length + " 条" + (state.nextCursor ? "（还有更多）" : "") +
      " · 更新于 " + new Date().toLocaleTimeString("zh-CN", { hour12: false });
  }

  function markSelectedRow() {
    var rows = $("ticket-rows").querySelectorAll("tr[data-ticket-id]");
    for (var i = 0; i < rows.length; i++) {
      var on = rows[i].getAttribute("data-ticket-id") === state.selectedId;
      rows[i].className = on ? "selected" : "";
      rows[i].setAttribute("aria-selected", on ? "true" : "false");
    }
  }

  // ---- detail ----
  function ticketFromHash() {
    var m = /^#\/?tickets\/(.+)$/.exec(window.location.hash || "");
    return m ? decodeURIComponent(m[1]) : null;
  }

  function selectTicket(id) {
    if (!id) return;
    var changed = id !== state.selectedId;
    state.selectedId = id;
    var wanted = "#/tickets/" + encodeURIComponent(id);
    if (window.location.hash !== wanted) {
      try { history.replaceState(null, "", wanted); } catch (e) { window.location.hash = wanted; }
    }
    markSelectedRow();
    if (changed) {
      state.ticket = null;
      $("reply-text").value = "";
      $("note-text").value = "";
      hideActionError();
    }
    loadDetail();
  }

  function closeDetail() {
    state.ticket = null;
    show($("detail-body"), false);
    show($("detail-empty"), true);
  }

  function loadDetail() {
    var id = state.selectedId;
    if (!id) return Promise.resolve();
    var seq = ++state.detailSeq;
    return api("GET", "/api/tickets/" + encodeURIComponent(id)).then(function (t) {
      if (seq !== state.detailSeq || id !== state.selectedId) return;
      renderDetail(t);
    }, function (err) {
      if (seq !== state.detailSeq) return;
      if (handleAuthError(err)) return;
      if (!state.ticket) {
        closeDetail();
        showToast("无法打开工单 " + id + "：" + err.message, true);
      } else {
        showActionError("刷新失败 Refresh failed: " + err.message);
      }
    });
  }

  function metaItem(dl, label, value, testid, cls) {
    var dd = el("dd", { "data-testid": testid, className: cls || "" });
    if (value instanceof Node) dd.appendChild(value); else dd.textContent = (value === null || value === undefined || value === "") ? "—" : String(value);
    dd.title = dd.textContent;
    dl.appendChild(el("div", { className: "meta-item" }, el("dt", { text: label }), dd));
  }

  function renderDetail(t) {
    state.ticket = t;
    show($("detail-empty"), false);
    show($("detail-body"), true);

    $("detail-id").textContent = t.id;
    var st = $("detail-status");
    st.textContent = statusLabel(t.status) + " " + (t.status || "");
    st.className = "status-badge big st-" + t.status;
    st.setAttribute("data-status", t.status || "");

    var flags = $("detail-flags");
    clear(flags);
    flags.appendChild(badge(t.priority || "—", "prio prio-" + (t.priority || "none"), "detail-priority"));
    if (t.urgent) flags.appendChild(badge("紧急 urgent", "urgent", "detail-urgent"));
    if (t.tier === "vip") flags.appendChild(badge("VIP", "vip", "detail-vip"));

    var subj = $("detail-subject");
    subj.textContent = t.subject || "";
    show(subj, !!t.subject);

    var dl = $("detail-meta");
    clear(dl);
    metaItem(dl, "渠道 Channel", t.channel, "meta-channel");
    metaItem(dl, "类别 Category", t.category ? (CATEGORY_LABELS[t.category] || "") + " " + t.category : "", "meta-category");
    metaItem(dl, "等级 Tier", t.tier ? (TIER_LABELS[t.tier] || "") + " " + t.tier : "", "meta-tier");
    metaItem(dl, "团队 Team", t.team, "meta-team");
    metaItem(dl, "处理人 Assignee", t.assignee, "meta-assignee");
    metaItem(dl, "客户 Customer", t.customer_id, "meta-customer", "mono");
    metaItem(dl, "创建 Created", localTime(t.created_at), "meta-created");
    metaItem(dl, "更新 Updated", localTime(t.updated_at), "meta-updated");
    if (t.work_order_id) metaItem(dl, "工单派发 Work order", t.work_order_id, "meta-work-order", "mono");

    var linked = $("detail-linked");
    clear(linked);
    var links = t.linked_tickets || [];
    if (links.length) {
      linked.appendChild(el("span", { className: "muted", text: "关联工单 Linked: " }));
      links.forEach(function (lid) {
        var a = el("a", { href: "#/tickets/" + encodeURIComponent(lid), className: "mono", "data-testid": "linked-ticket", "data-ticket-id": lid, text: lid });
        a.addEventListener("click", function (ev) { ev.preventDefault(); selectTicket(lid); });
        linked.appendChild(a);
      });
    }
    show(linked, links.length > 0);

    renderConversation(t);
    renderNotes(t);
    renderTimeline(t);
    renderClocks(t);
    updateActionAvailability();
  }

  function renderConversation(t) {
    var ol = $("conversation");
    var atBottom = ol.scrollHeight - ol.scrollTop - ol.clientHeight < 40;
    var prevCount = ol.childElementCount;
    clear(ol);
    var msgs = t.messages || [];
    if (!msgs.length) ol.appendChild(el("li", { className: "muted empty-line", text: "暂无消息 No messages" }));
    msgs.forEach(function (m) {
      var out = m.direction === "out";
      var li = el("li", {
        className: "msg " + (out ? "msg-out" : "msg-in") + (m.delivery === "failed" ? " msg-failed" : ""),
        "data-testid": "message",
        "data-direction": m.direction,
        "data-message-id": m.id
      });
      var bubble = el("div", { className: "bubble" });
      bubble.appendChild(el("div", { className: "msg-text", "data-testid": "message-text", text: m.text || "" }));
      (m.attachments || []).forEach(function (a) {
        var url = safeUrl(a.url);
        var name = a.name || a.type || "附件 attachment";
        var node = url
          ? el("a", { href: url, target: "_blank", rel: "noopener noreferrer", className: "attachment", text: "附件 " + name })
          : el("span", { className: "attachment", text: "附件 " + name });
        bubble.appendChild(node);
      });
      li.appendChild(bubble);
      var meta = el("div", { className: "msg-meta" },
        el("span", { text: (out ? (m.author || "客服") : (m.author || "客户")) }),
        el("span", { text: " · " + shortTime(m.at), title: localTime(m.at) }),
        m.channel ? el("span", { text: " · " + m.channel }) : null
      );
      if (out) {
        var d = m.delivery || "queued";
        meta.appendChild(el("span", {
          className: "delivery delivery-" + d,
          "data-testid": "message-delivery",
          "data-delivery": d,
          title: m.delivery_detail || "",
          text: DELIVERY_LABELS[d] || d
        }));
        if (d === "failed" && m.delivery_detail) {
          meta.appendChild(el("span", { className: "delivery-detail", text: m.delivery_detail }));
        }
      }
      li.appendChild(meta);
      ol.appendChild(li);
    });
    if (atBottom || prevCount !== ol.childElementCount) ol.scrollTop = ol.scrollHeight;
  }

  function renderNotes(t) {
    var ul = $("notes");
    clear(ul);
    var notes = t.notes || [];
    if (!notes.length) ul.appendChild(el("li", { className: "muted empty-line", text: "暂无备注 No notes" }));
    notes.forEach(function (n) {
      ul.appendChild(el("li", { className: "note", "data-testid": "note", "data-note-id": n.id },
        el("div", { className: "note-text", text: n.text || "" }),
        el("div", { className: "note-meta", text: (n.author || "") + " · " + localTime(n.at) })
      ));
    });
  }

  var TIMELINE_SKIP = { at: 1, actor: 1, action: 1, message_id: 1, seq: 1 };
  function describeExtra(entry) {
    var bits = [];
    if (entry.from || entry.to) bits.push(statusLabel(entry.from) + " → " + statusLabel(entry.to));
    Object.keys(entry).forEach(function (k) {
      if (TIMELINE_SKIP[k] || k === "from" || k === "to") return;
      var v = entry[k];
      if (v === null || v === undefined || v === "") return;
      if (typeof v === "object") v = JSON.stringify(v);
      bits.push(k + ": " + v);
    });
    return bits.join(" · ");
  }

  function renderTimeline(t) {
    var ol = $("timeline");
    clear(ol);
    var entries = (t.timeline || []).slice().reverse(); // newest first
    if (!entries.length) ol.appendChild(el("li", { className: "muted empty-line", text: "暂无记录" }));
    entries.forEach(function (e) {
      var action = String(e.action || "");
      var escalated = action === "escalated" || action === "escalate";
      var label = ACTION_LABELS[action];
      ol.appendChild(el("li", {
        className: "tl-item" + (escalated ? " tl-escalated" : ""),
        "data-testid": "timeline-item",
        "data-action": action
      },
        el("div", { className: "tl-head" },
          el("span", { className: "tl-action", text: (escalated ? "⚠ " : "") + (label ? label + " " : "") + action }),
          el("span", { className: "tl-time", text: shortTime(e.at), title: localTime(e.at) })
        ),
        el("div", { className: "tl-actor muted", text: e.actor || "" }),
        (function () {
          var extra = describeExtra(e);
          return extra ? el("div", { className: "tl-extra", text: extra }) : null;
        })()
      ));
    });
  }

  function renderClocks(t) {
    var ul = $("clocks");
    clear(ul);
    var clocks = t.clocks || [];
    if (!clocks.length) ul.appendChild(el("li", { className: "muted empty-line", text: "无 None" }));
    clocks.forEach(function (c) {
      var running = c.state === "running";
      var li = el("li", { className: "clock clock-" + c.state, "data-testid": "clock", "data-clock": c.name, "data-state": c.state },
        el("div", { className: "clock-name" },
          el("span", { text: c.name }),
          c.level ? el("span", { className: "badge level", text: "L" + c.level }) : null
        ),
        el("div", { className: "clock-state", text: (CLOCK_LABELS[c.state] || "") + " " + c.state }),
        el("div", {
          className: "clock-countdown mono",
          "data-testid": "clock-countdown",
          "data-due": running ? c.due_at : null,
          title: "截止 due " + localTime(c.due_at),
          text: running ? "" : "截止 " + shortTime(c.due_at)
        })
      );
      ul.appendChild(li);
    });
    tickClocks();
  }

  function tickClocks() {
    var nodes = document.querySelectorAll("[data-due]");
    var now = Date.now();
    for (var i = 0; i < nodes.length; i++) {
      var due = Date.parse(nodes[i].getAttribute("data-due"));
      if (isNaN(due)) continue;
      var left = due - now;
      nodes[i].textContent = left >= 0 ? "剩余 " + formatDuration(left) : "已超 " + formatDuration(-left).replace("-", "");
      var li = nodes[i].parentNode;
      li.classList.toggle("clock-soon", left >= 0 && left < 15 * 60 * 1000);
      li.classList.toggle("clock-overdue", left < 0);
    }
  }

  // ---- actions ----
  function actionButtons() { return document.querySelectorAll(".detail-pane [data-action]"); }

  function updateActionAvailability() {
    var t = state.ticket;
    var s = t ? t.status : "";
    var open = s && s !== "resolved" && s !== "closed";
    var rules = {
      ack: s === "new" || s === "assigned",
      resolve: !!open,
      reopen: s === "resolved" || s === "closed",
      reply: !!open, note: true, assign: !!open, status: true
    };
    var buttons = actionButtons();
    for (var i = 0; i < buttons.length; i++) {
      var a = buttons[i].getAttribute("data-action");
      buttons[i].disabled = state.busy || !t || rules[a] === false;
    }
    var ss = $("status-select");
    ss.disabled = state.busy || !t;
    var keep = ss.value;
    clear(ss);
    ss.appendChild(el("option", { value: "", text: "状态… Status" }));
    STATUSES.forEach(function (x) {
      if (x === s) return;
      ss.appendChild(el("option", { value: x, text: statusLabel(x) + " " + x }));
    });
    ss.value = keep && keep !== s ? keep : "";
    $("assign-select").disabled = state.busy || !t;
    $("assign-input").disabled = state.busy || !t;
  }

  function setBusy(b) {
    state.busy = b;
    document.querySelector(".detail-pane").classList.toggle("busy", b);
    updateActionAvailability();
    $("reply-text").readOnly = b;
    $("note-text").readOnly = b;
  }

  function showActionError(msg) { var box = $("action-error"); box.textContent = msg; show(box, true); }
  function hideActionError() { var box = $("action-error"); box.textContent = ""; show(box, false); }

  var toastTimer = null;
  function showToast(msg, isError) {
    var t = $("toast");
    t.textContent = msg;
    t.className = "toast" + (isError ? " toast-error" : "");
    show(t, true);
    if (toastTimer) clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { show(t, false); }, 3500);
  }

  function performAction(action) {
    var t = state.ticket;
    if (!t || state.busy) return;
    var path = "/api/tickets/" + encodeURIComponent(t.id) + "/";
    var body = {};
    var done = "";
    var clearField = null;
    switch (action) {
      case "ack": path += "ack"; done = "已接单 Acknowledged"; break;
      case "resolve": path += "resolve"; done = "已解决 Resolved"; break;
      case "reopen": path += "reopen"; done = "已重开 Reopened"; break;
      case "reply": {
        var text = $("reply-text").value.trim();
        if (!text) { showActionError("请输入回复内容 Reply text is empty"); $("reply-text").focus(); return; }
        path += "replies"; body = { text: text }; done = "已回复 Reply queued"; clearField = "reply-text"; break;
      }
      case "note": {
        var note = $("note-text").value.trim();
        if (!note) { showActionError("请输入备注内容 Note text is empty"); $("note-text").focus(); return; }
        path += "notes"; body = { text: note }; done = "已添加备注 Note added"; clearField = "note-text"; break;
      }
      case "assign": {
        var who = $("assign-select").hidden ? $("assign-input").value.trim() : $("assign-select").value;
        if (!who) { showActionError("请选择指派对象 Choose someone to assign"); return; }
        path += "assign"; body = { assignee: who }; done = "已指派给 " + who; break;
      }
      case "status": {
        var ns = $("status-select").value;
        if (!ns) { showActionError("请选择新状态 Choose a status"); return; }
        path += "status"; body = { status: ns }; done = "状态已改为 " + statusLabel(ns); break;
      }
      default: return;
    }
    hideActionError();
    setBusy(true);
    var id = t.id;
    api("POST", path, body).then(function (updated) {
      setBusy(false);
      if (clearField) $(clearField).value = "";
      if (action === "status") $("status-select").value = "";
      if (action === "assign") { $("assign-select").value = ""; $("assign-input").value = ""; }
      if (updated && updated.id === id && state.selectedId === id) renderDetail(updated);
      showToast(done, false);
      return Promise.all([loadDetail(), loadList(false)]);
    }, function (err) {
      setBusy(false);
      if (handleAuthError(err)) return;
      showActionError("操作失败 " + (err.status ? "(" + err.status + ") " : "") + err.message);
    });
  }

  function autoRefresh() {
    if (!state.token || document.hidden) return;
    loadList(false);
    if (state.selectedId && !state.busy) loadDetail();
  }

  // ---- wiring ----
  function init() {
    var fs = $("filter-status");
    STATUSES.forEach(function (s) { fs.appendChild(el("option", { value: s, text: statusLabel(s) + " " + s })); });

    $("signin-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      var token = $("token-input").value.trim().replace(/^Bearer\s+/i, "");
      if (!token) { showSignin("请粘贴令牌 Please paste a token"); return; }
      signIn(token);
    });
    $("token-input").addEventListener("keydown", function (ev) {
      if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); $("signin-form").requestSubmit ? $("signin-form").requestSubmit() : $("signin-button").click(); }
    });
    $("signout").addEventListener("click", function () { signOut(""); });
    fs.addEventListener("change", function () { loadList(false, true); });
    $("filter-mine").addEventListener("change", function () { loadList(false, true); });
    $("refresh-list").addEventListener("click", function () { loadList(false); if (state.selectedId) loadDetail(); });
    $("load-more").addEventListener("click", function () { loadList(true); });

    var buttons = actionButtons();
    for (var i = 0; i < buttons.length; i++) {
      (function (b) { b.addEventListener("click", function () { performAction(b.getAttribute("data-action")); }); })(buttons[i]);
    }
    function tab(which) {
      var reply = which === "reply";
      $("tab-reply").classList.toggle("active", reply);
      $("tab-note").classList.toggle("active", !reply);
      $("tab-reply").setAttribute("aria-selected", reply ? "true" : "false");
      $("tab-note").setAttribute("aria-selected", reply ? "false" : "true");
      show($("panel-reply"), reply);
      show($("panel-note"), !reply);
      $(reply ? "reply-text" : "note-text").focus();
    }
    $("tab-reply").addEventListener("click", function () { tab("reply"); });
    $("tab-note").addEventListener("click", function () { tab("note"); });
    $("reply-text").addEventListener("keydown", function (ev) {
      if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); performAction("reply"); }
    });
    $("note-text").addEventListener("keydown", function (ev) {
      if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); performAction("note"); }
    });
    window.addEventListener("hashchange", function () {
      var id = ticketFromHash();
      if (id && state.token && id !== state.selectedId) selectTicket(id);
    });
    document.addEventListener("visibilitychange", function () { if (!document.hidden) autoRefresh(); });
    state.clockTimer = setInterval(tickClocks, 1000);

    var saved = null;
    try { saved = sessionStorage.getItem(TOKEN_KEY); } catch (e) { saved = null; }
    if (saved) signIn(saved); else showSignin("");
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
