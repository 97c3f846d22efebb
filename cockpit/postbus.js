/* postbus.js: the mail queue page of cockpit-postbus, run by the browser in Cockpit's frame. It reads
 * and changes qmgr's queue through org.postbus.Queue1 (src/shared/queue-bus.h) with cockpit.dbus(),
 * and follows the queue's signals, so that the page stays current without reloading. */
"use strict";

(function () {
    const BUS_NAME = "org.postbus.Queue1";
    const QUEUE_PATH = "/org/postbus/Queue1";
    const QUEUE_IFACE = "org.postbus.Queue1";
    const MESSAGE_IFACE = "org.postbus.Message1";
    const PROPS_IFACE = "org.freedesktop.DBus.Properties";
    const QUEUES = ["incoming", "active", "deferred", "hold", "corrupt"];
    const MAX_ROWS = 1000;      /* rows drawn; a longer list says how many were left out */
    const MAX_EVENTS = 50;

    let client = null;
    let selected = new Set();   /* queue IDs checked in the list */
    let shown = [];             /* IDs in the list now */
    let detailsId = null;       /* the message in the details pane */
    let detailsWatch = null;
    let lastDrawn = null;       /* the list as drawn last */
    let refreshTimer = null;
    let refreshing = false;
    let refreshAgain = false;

    const $ = id => document.getElementById(id);

    function el(tag, text, attrs) {
        const e = document.createElement(tag);
        if (text !== undefined && text !== null)
            e.textContent = String(text);
        for (const k in attrs || {})
            e.setAttribute(k, attrs[k]);
        return e;
    }

    function usecText(us) {
        if (!us)
            return "–";
        return new Date(us / 1000).toLocaleString();
    }

    function sizeText(bytes) {
        if (bytes < 1024)
            return bytes + " B";
        if (bytes < 1024 * 1024)
            return (bytes / 1024).toFixed(1) + " KiB";
        return (bytes / 1024 / 1024).toFixed(1) + " MiB";
    }

    function showError(what, ex) {
        let text = what + ": " + (ex && ex.message ? ex.message : String(ex));
        if (ex && ex.name === "org.postbus.Error.AccessDenied")
            text += " (changing the queue needs administrative access, or the polkit action org.postbus.queue.manage)";
        $("error-text").textContent = text;
        $("error").hidden = false;
    }

    function addEvent(text) {
        const list = $("events");
        const item = el("li");
        item.appendChild(el("time", new Date().toLocaleTimeString()));
        item.appendChild(document.createTextNode(" " + text));
        list.insertBefore(item, list.firstChild);
        while (list.children.length > MAX_EVENTS)
            list.removeChild(list.lastChild);
    }

    function call(method, args, type) {
        return client.call(QUEUE_PATH, QUEUE_IFACE, method, args, type ? { type } : undefined);
    }

    /* Counts */

    function setCount(name, value) {
        const queue = name.toLowerCase();
        if (QUEUES.includes(queue))
            $("count-" + queue).textContent = String(value);
        else if (name === "OldestDeferredUSec")
            $("oldest-deferred").textContent = value ? usecText(value) : "none";
    }

    function applyProperties(props) {
        for (const name in props)
            setCount(name, props[name].v);
    }

    function refreshCounts() {
        return client.call(QUEUE_PATH, PROPS_IFACE, "GetAll", [QUEUE_IFACE])
            .then(([props]) => applyProperties(props));
    }

    /* Messages */

    function currentFilter() {
        const filter = {};
        const keys = { queue: "filter-queue", sender: "filter-sender", recipient: "filter-recipient",
                       destination: "filter-destination" };
        for (const key in keys) {
            const value = $(keys[key]).value.trim();
            if (value)
                filter[key] = { t: "s", v: value };
        }
        return filter;
    }

    function listMessages() {
        const filter = currentFilter();
        const queue = filter.queue ? filter.queue.v : "";
        const list = call("ListMessages", [queue], "s").then(([messages]) => messages);
        if (Object.keys(filter).every(k => k === "queue"))
            return list;
        return Promise.all([list, call("SelectMessages", [filter], "a{sv}")])
            .then(([messages, [ids]]) => {
                const wanted = new Set(ids);
                return messages.filter(m => wanted.has(m[0]));
            });
    }

    function drawMessages(messages) {
        const body = $("messages-body");
        messages.sort((a, b) => a[2] - b[2]);
        /* unchanged: the rows stay as they are (a click on one is not lost to a redraw) */
        const drawn = JSON.stringify(messages);
        if (drawn === lastDrawn)
            return;
        lastDrawn = drawn;
        shown = messages.map(m => m[0]);
        const present = new Set(shown);
        for (const id of Array.from(selected))
            if (!present.has(id))
                selected.delete(id);

        const rows = document.createDocumentFragment();
        for (const [id, queue, arrival, size, sender, recipients] of messages.slice(0, MAX_ROWS)) {
            const tr = el("tr", null, { "data-id": id, "data-queue": queue });
            if (id === detailsId)
                tr.classList.add("current");
            const box = el("input", null, { type: "checkbox", "aria-label": "Select " + id });
            box.checked = selected.has(id);
            box.addEventListener("change", () => {
                if (box.checked)
                    selected.add(id);
                else
                    selected.delete(id);
                updateSelection();
            });
            const cell = el("td");
            cell.appendChild(box);
            tr.appendChild(cell);
            const link = el("a", id, { href: "#", class: "qid" });
            link.addEventListener("click", ev => { ev.preventDefault(); openDetails(id) });
            const idCell = el("td");
            idCell.appendChild(link);
            tr.appendChild(idCell);
            tr.appendChild(el("td", queue, { class: "queue-" + queue }));
            tr.appendChild(el("td", usecText(arrival)));
            tr.appendChild(el("td", sizeText(size)));
            tr.appendChild(el("td", sender || "<>"));
            tr.appendChild(el("td", recipients.join(", ")));
            rows.appendChild(tr);
        }
        if (messages.length > MAX_ROWS) {
            const tr = el("tr", null, { class: "more" });
            tr.appendChild(el("td", (messages.length - MAX_ROWS) + " more not shown: narrow the filter",
                              { colspan: "7" }));
            rows.appendChild(tr);
        }
        body.replaceChildren(rows);
        $("messages-empty").hidden = messages.length > 0;
        updateSelection();
    }

    function updateSelection() {
        $("selected-count").textContent = selected.size + " selected";
        for (const b of $("bulk-actions").querySelectorAll("button"))
            b.disabled = selected.size === 0;
        $("select-all").checked = shown.length > 0 && selected.size === shown.length;
    }

    /* One message */

    function openDetails(id) {
        detailsId = id;
        for (const tr of $("messages-body").querySelectorAll("tr"))
            tr.classList.toggle("current", tr.getAttribute("data-id") === id);
        if (detailsWatch)
            detailsWatch.remove();
        detailsWatch = client.subscribe({ interface: PROPS_IFACE, member: "PropertiesChanged",
                                          path: QUEUE_PATH + "/message/" + id },
                                        () => refreshDetails());
        $("details").hidden = false;
        $("details-id").textContent = id;
        refreshDetails();
    }

    function closeDetails() {
        detailsId = null;
        if (detailsWatch)
            detailsWatch.remove();
        detailsWatch = null;
        $("details").hidden = true;
        for (const tr of $("messages-body").querySelectorAll("tr.current"))
            tr.classList.remove("current");
    }

    function refreshDetails() {
        const id = detailsId;
        if (!id)
            return Promise.resolve();
        return call("GetMessage", [id], "s")
            .then(([path]) => client.call(path, PROPS_IFACE, "GetAll", [MESSAGE_IFACE]))
            .then(([props]) => {
                if (id === detailsId)
                    drawDetails(props);
            })
            .catch(ex => {
                /* the message may leave between GetMessage and reading its object */
                if (ex.name === "org.postbus.Error.NoSuchMessage")
                    return detailsGone(id);
                return call("GetMessage", [id], "s")
                    .then(() => { if (id === detailsId) showError("Reading message " + id, ex) })
                    .catch(again => {
                        if (again.name === "org.postbus.Error.NoSuchMessage")
                            detailsGone(id);
                        else if (id === detailsId)
                            showError("Reading message " + id, ex);
                    });
            });
    }

    function detailsGone(id) {
        if (id !== detailsId)
            return;
        $("details-props").replaceChildren(el("dt", "State"), el("dd", "no longer queued"));
        $("details-recipients").tBodies[0].replaceChildren();
        $("details").classList.add("gone");
    }

    function drawDetails(props) {
        const v = name => props[name] ? props[name].v : undefined;
        const dl = document.createDocumentFragment();
        const add = (label, value, id) => {
            dl.appendChild(el("dt", label));
            dl.appendChild(el("dd", value, id ? { id } : undefined));
        };
        $("details").classList.remove("gone");
        add("Queue", v("Queue"), "details-queue");
        add("Sender", v("Sender") || "<>");
        add("Arrived", usecText(v("ArrivalUSec")));
        add("Size", sizeText(v("Size")));
        add("Attempts", v("Attempts"));
        add("Next attempt", v("NextAttemptUSec") ? usecText(v("NextAttemptUSec")) : "not scheduled");
        add("Reason", v("Reason") || "–");
        $("details-props").replaceChildren(dl);
        const rows = document.createDocumentFragment();
        for (const [address, original, state, reason] of v("Recipients") || []) {
            const tr = el("tr");
            for (const text of [address, original, state, reason || "–"])
                tr.appendChild(el("td", text));
            rows.appendChild(tr);
        }
        $("details-recipients").tBodies[0].replaceChildren(rows);
    }

    /* Actions */

    function act(action, ids) {
        if (ids.length === 0)
            return;
        const what = ids.length === 1 ? "message " + ids[0] : ids.length + " messages";
        let done;
        switch (action) {
        case "hold":
            done = call("HoldMessages", [ids], "as");
            break;
        case "release":
            done = call("ReleaseMessages", [ids], "as");
            break;
        case "requeue":
            done = call("RequeueMessages", [ids], "as");
            break;
        case "delete":
            confirmThen("Delete " + what + " from the queue, without a notice to anyone?", "Delete", false,
                        () => finish(action, what, ids, call("DeleteMessages", [ids], "as")));
            return;
        case "bounce":
            confirmThen("Bounce " + what + ": every pending recipient fails now, and the sender gets a " +
                        "non-delivery notice.", "Bounce", true,
                        reason => finish(action, what, ids, call("BounceMessages", [ids, reason], "ass")));
            return;
        default:
            return;
        }
        finish(action, what, ids, done);
    }

    /* Asks in the page's dialog; then(reason) when the administrator says yes. */
    function confirmThen(text, yes, withReason, then) {
        const dialog = $("confirm");
        $("confirm-text").textContent = text;
        $("confirm-yes").textContent = yes;
        $("confirm-reason-label").hidden = !withReason;
        $("confirm-reason").value = "";
        dialog.onclose = () => {
            if (dialog.returnValue === "yes")
                then($("confirm-reason").value.trim());
        };
        dialog.returnValue = "";
        dialog.showModal();
    }

    function finish(action, what, ids, done) {
        done.then(([n]) => {
            addEvent(action + ": " + n + " of " + ids.length + " acted on");
            scheduleRefresh(0);
        }).catch(ex => showError(action[0].toUpperCase() + action.slice(1) + " " + what, ex));
    }

    /* Destinations */

    function drawDestinations(dests, paused) {
        const rows = document.createDocumentFragment();
        const listed = new Set();
        for (const [transport, dest, state, conc, limit, waiting, , retry] of dests) {
            listed.add(dest.toLowerCase());
            if (transport === "")       /* paused, and nothing for it in qmgr */
                rows.appendChild(destinationRow("", dest, state, "–", "–", "–"));
            else
                rows.appendChild(destinationRow(transport, dest, state, conc + " / " + limit,
                                                waiting, retry ? usecText(retry) : "now"));
        }
        for (const dest of paused)
            if (!listed.has(dest.toLowerCase()))
                rows.appendChild(destinationRow("", dest, "paused", "–", "–", "–"));
        $("destinations-body").replaceChildren(rows);
        $("destinations-empty").hidden = $("destinations-body").children.length > 0;
    }

    function destinationRow(transport, dest, state, conc, waiting, retry) {
        const tr = el("tr", null, { "data-destination": dest, "data-state": state });
        for (const [text, cls] of [[transport || "–"], [dest], [state, "state-" + state], [conc], [waiting], [retry]])
            tr.appendChild(el("td", text, cls ? { class: cls } : undefined));
        const cell = el("td", null, { class: "row-actions" });
        if (state !== "paused" && transport) {
            const flush = el("button", "Flush", { type: "button", "data-action": "flush" });
            flush.addEventListener("click", () => flushDestination(dest));
            cell.appendChild(flush);
        }
        const button = el("button", state === "paused" ? "Resume" : "Pause", { type: "button" });
        button.addEventListener("click", () => {
            if (state === "paused")
                resume(dest);
            else
                pause(dest, "");
        });
        cell.appendChild(button);
        tr.appendChild(cell);
        return tr;
    }

    function pause(dest, reason) {
        call("PauseDestination", [dest, reason || "paused in Cockpit"], "ss")
            .then(() => { addEvent("paused " + dest); scheduleRefresh(0) })
            .catch(ex => showError("Pausing " + dest, ex));
    }

    function resume(dest) {
        call("ResumeDestination", [dest], "s")
            .then(() => { addEvent("resumed " + dest); scheduleRefresh(0) })
            .catch(ex => showError("Resuming " + dest, ex));
    }

    function flushDestination(dest) {
        call("FlushDestination", [dest], "s")
            .then(([n]) => { addEvent("flush " + dest + ": " + n + " activated"); scheduleRefresh(0) })
            .catch(ex => showError("Flushing " + dest, ex));
    }

    function flushQueue() {
        call("FlushQueue", [])
            .then(([n]) => { addEvent("flush: " + n + " deferred activated"); scheduleRefresh(0) })
            .catch(ex => showError("Flushing the deferred queue", ex));
    }

    /* The smtp client's host failure cache, as the agents last reported it (ListHostFailures). */
    function drawHostFailures(hosts) {
        const rows = document.createDocumentFragment();
        for (const [transport, dest, server, reason, until] of hosts) {
            const tr = el("tr", null, { "data-server": server });
            for (const text of [transport, dest, server, usecText(until), reason])
                tr.appendChild(el("td", text));
            rows.appendChild(tr);
        }
        $("host-failures-body").replaceChildren(rows);
        $("host-failures").hidden = hosts.length === 0;
        $("host-failures-empty").hidden = hosts.length > 0;
    }

    function refreshDestinations() {
        return Promise.all([call("ListDestinations", []),
                            client.call(QUEUE_PATH, PROPS_IFACE, "Get", [QUEUE_IFACE, "PausedDestinations"]),
                            call("ListHostFailures", [])])
            .then(([[dests], [paused], [hosts]]) => {
                drawDestinations(dests, paused.v);
                drawHostFailures(hosts);
            });
    }

    /* Refreshing from the signals */

    function refreshAll() {
        if (refreshing) {
            refreshAgain = true;
            return;
        }
        refreshing = true;
        Promise.all([refreshCounts(), listMessages().then(drawMessages), refreshDestinations(), refreshDetails()])
            .then(() => {
                $("bus-state").textContent = "live";
                $("bus-state").className = "state live";
            })
            .catch(ex => {
                $("bus-state").textContent = "queue manager unreachable";
                $("bus-state").className = "state down";
                showError("Reading the queue", ex);
            })
            .finally(() => {
                refreshing = false;
                if (refreshAgain) {
                    refreshAgain = false;
                    scheduleRefresh(200);
                }
            });
    }

    /* Many signals in a burst make one refresh. */
    function scheduleRefresh(delay) {
        if (refreshTimer)
            clearTimeout(refreshTimer);
        refreshTimer = setTimeout(() => { refreshTimer = null; refreshAll() }, delay);
    }

    function onSignal(path, iface, signal, args) {
        switch (signal) {
        case "MessageQueued":
            addEvent("queued " + args[0] + " from " + (args[1] || "<>") + ", " + args[2] + " recipient(s)");
            break;
        case "MessageDelivered":
            addEvent("delivered " + args[0] + " to " + args[1] + " via " + args[2]);
            break;
        case "MessageDeferred":
            addEvent("deferred " + args[0] + " to " + args[1] + ": " + args[3]);
            break;
        case "MessageBounced":
            addEvent("bounced " + args[0] + " to " + args[1] + ": " + args[3]);
            break;
        case "MessageRemoved":
            addEvent("removed " + args[0]);
            break;
        case "DestinationDead":
            addEvent("destination " + args[1] + " (" + args[0] + ") dead: " + args[2]);
            break;
        case "Alert":
            addEvent("alert (" + args[0] + "): " + args[1]);
            break;
        }
        scheduleRefresh(300);
    }

    function onPropertiesChanged(path, iface, signal, [changedIface, changed, invalidated]) {
        if (changedIface !== QUEUE_IFACE)
            return;
        applyProperties(changed);
        if (invalidated.length > 0)
            refreshCounts().catch(ex => showError("Reading the counts", ex));
        scheduleRefresh(300);
    }

    function init() {
        client = cockpit.dbus(BUS_NAME, { bus: "system", superuser: "try" });
        client.subscribe({ interface: QUEUE_IFACE, path: QUEUE_PATH }, onSignal);
        client.subscribe({ interface: PROPS_IFACE, member: "PropertiesChanged", path: QUEUE_PATH },
                         onPropertiesChanged);
        /* qmgr (re)started or stopped */
        client.addEventListener("owner", (event, owner) => {
            if (owner)
                addEvent("queue manager on the bus");
            else
                addEvent("queue manager left the bus");
            scheduleRefresh(owner ? 0 : 500);
        });
        client.addEventListener("close", (event, options) => {
            $("bus-state").textContent = "disconnected" + (options && options.problem ? ": " + options.problem : "");
            $("bus-state").className = "state down";
        });

        $("error-close").addEventListener("click", () => { $("error").hidden = true });
        $("filters").addEventListener("submit", ev => { ev.preventDefault(); scheduleRefresh(0) });
        $("filter-queue").addEventListener("change", () => scheduleRefresh(0));
        $("filter-clear").addEventListener("click", () => {
            $("filters").reset();
            scheduleRefresh(0);
        });
        for (const queue of QUEUES)
            document.querySelector('.count[data-queue="' + queue + '"]').addEventListener("click", () => {
                $("filter-queue").value = queue;
                scheduleRefresh(0);
            });
        $("select-all").addEventListener("change", () => {
            selected = $("select-all").checked ? new Set(shown.slice(0, MAX_ROWS)) : new Set();
            for (const box of $("messages-body").querySelectorAll("input[type=checkbox]"))
                box.checked = $("select-all").checked;
            updateSelection();
        });
        for (const b of $("bulk-actions").querySelectorAll("button[data-action]"))
            b.addEventListener("click", () => act(b.getAttribute("data-action"), Array.from(selected)));
        for (const b of $("details-actions").querySelectorAll("button[data-action]"))
            b.addEventListener("click", () => { if (detailsId) act(b.getAttribute("data-action"), [detailsId]) });
        $("details-close").addEventListener("click", closeDetails);
        $("flush-queue").addEventListener("click", flushQueue);
        $("pause-form").addEventListener("submit", ev => {
            ev.preventDefault();
            const dest = $("pause-destination").value.trim();
            if (dest)
                pause(dest, $("pause-reason").value.trim());
        });

        updateSelection();
        refreshAll();
    }

    document.addEventListener("DOMContentLoaded", init);
}());
