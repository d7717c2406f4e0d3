// The bell page: the unread badge, a dropdown of entries (bundles show once, with a count), mark
// all as read, and live updates over Server-Sent Events. The token comes in the URL fragment
// (#token=...), which the browser never sends to a server or puts in a Referer.

(() => {
  const token = new URLSearchParams(location.hash.slice(1)).get('token') ?? '';
  const bell = document.getElementById('bell');
  const badge = document.getElementById('badge');
  const badgeCount = document.getElementById('badge-count');
  const panel = document.getElementById('panel');
  const list = document.getElementById('list');
  const empty = document.getElementById('empty');
  const status = document.getElementById('status');
  const markAll = document.getElementById('mark-all');
  let newest = null;

  async function api(path, options = {}) {
    const res = await fetch(path, {
      ...options,
      headers: {
        authorization: `Bearer ${token}`,
        'content-type': 'application/json',
        ...(options.headers ?? {}),
      },
    });
    if (res.status === 401) throw new Error('Your session has expired: reload the page.');
    if (!res.ok) throw new Error(`The inbox answered ${res.status}.`);
    return res.json();
  }

  function showCounts(counts) {
    badgeCount.textContent = counts.unread > 99 ? '99+' : String(counts.unread);
    badge.dataset.count = String(counts.unread);
    bell.setAttribute('aria-label', `Notifications, ${counts.unread} unread`);
  }

  function describe(entry) {
    if (entry.kind === 'folded') return `${entry.count} more notifications (${entry.category})`;
    if (entry.count > 1) {
      const who = entry.actors.join(', ');
      return `${entry.title} and ${entry.count - 1} more${who ? ` from ${who}` : ''}`;
    }
    return entry.title || entry.category;
  }

  function render(entries) {
    list.replaceChildren(
      ...entries.map((entry) => {
        const li = document.createElement('li');
        li.className = entry.unread > 0 ? 'unread' : 'read';
        li.dataset.entry = entry.id;
        const link = document.createElement('a');
        link.href = entry.url || '#';
        const text = document.createElement('div');
        text.textContent = describe(entry);
        const meta = document.createElement('div');
        meta.className = 'meta';
        meta.textContent = `${entry.unread > 0 ? 'Unread · ' : ''}${new Date(entry.latest).toLocaleString()}`;
        link.append(text, meta);
        li.append(link);
        return li;
      }),
    );
    empty.hidden = entries.length > 0;
    newest = entries[0]?.notification_ids[0] ?? null;
  }

  async function refresh() {
    const [{ entries }, counts] = await Promise.all([api('/v1/notifications?limit=20'), api('/v1/counts')]);
    render(entries);
    showCounts(counts);
  }

  bell.addEventListener('click', async () => {
    const open = panel.hidden;
    panel.hidden = !open;
    bell.setAttribute('aria-expanded', String(open));
    if (open) {
      await refresh().catch((err) => (status.textContent = err.message));
      if (Number(badge.dataset.count) > 0)
        await api('/v1/seen', { method: 'POST', body: '{}' }).catch(() => {});
    }
  });

  markAll.addEventListener('click', async () => {
    if (!newest) return;
    try {
      showCounts(await api('/v1/read', { method: 'POST', body: JSON.stringify({ up_to: newest }) }));
      await refresh();
      status.textContent = 'All notifications marked as read.';
    } catch (err) {
      status.textContent = err.message;
    }
  });

  // EventSource reconnects by itself and sends Last-Event-ID, so nothing is missed in between.
  const events = new EventSource(`/v1/stream?access_token=${encodeURIComponent(token)}`);
  events.addEventListener('counts', (e) => showCounts(JSON.parse(e.data)));
  events.addEventListener('notification', () => {
    refresh().catch((err) => (status.textContent = err.message));
  });

  refresh().catch((err) => (status.textContent = err.message));
})();
