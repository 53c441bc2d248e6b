// Layout self-check for wall screens, run only when the URL has ?check=layout (the
// browser test and an engineer setting up a screen use it). Once the board has settled
// it lists every element whose text is cut (ellipsis, line clamp, overflow hidden),
// every list that needs scrolling to show all of its items, and whether the page itself
// scrolls, into <pre id="layout-report" data-ok="true|false"> as JSON.
'use strict';

(() => {
  const params = new URLSearchParams(location.search);
  if (params.get('check') !== 'layout') return;
  const SETTLE_MS = Number(params.get('settle_ms') || 4000);

  function describe(el) {
    let s = el.tagName.toLowerCase();
    if (el.id) s += `#${el.id}`;
    if (el.classList.length) s += `.${[...el.classList].join('.')}`;
    const owner = el.closest('[id]');
    if (owner && owner !== el) s = `#${owner.id} ${s}`;
    return s;
  }

  function visible(el) {
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && getComputedStyle(el).visibility !== 'hidden';
  }

  function check() {
    const problems = [];
    const root = document.documentElement;
    if (root.scrollWidth > innerWidth + 1)
      problems.push({ kind: 'page-scrolls-sideways', detail: `${root.scrollWidth} > ${innerWidth}` });
    const pageScrolls = root.scrollHeight > innerHeight + 1;
    for (const el of document.querySelectorAll('header *, main *, #strategy-view *')) {
      if (!visible(el) || el.closest('[hidden]')) continue;
      const cs = getComputedStyle(el);
      const clipsX = cs.overflowX !== 'visible';
      const clipsY = cs.overflowY !== 'visible';
      const text = (el.textContent || '').trim().replace(/\s+/g, ' ').slice(0, 80);
      if (clipsX && el.scrollWidth > el.clientWidth + 1)
        problems.push({ kind: 'cut-sideways', element: describe(el), text, detail: `${el.scrollWidth} > ${el.clientWidth}` });
      if (clipsY && el.scrollHeight > el.clientHeight + 1) {
        const kind = cs.overflowY === 'auto' || cs.overflowY === 'scroll' ? 'list-scrolls' : 'cut-below';
        problems.push({ kind, element: describe(el), text, detail: `${el.scrollHeight} > ${el.clientHeight}` });
      }
    }
    const report = {
      viewport: `${innerWidth}x${innerHeight}`,
      page_scrolls: pageScrolls,
      page_height: root.scrollHeight,
      // What takes the height, for a page that scrolls: each block of the header and main.
      blocks: [...document.querySelectorAll('body > header, main > *, main > * > *')]
        .filter((el) => visible(el) && !el.closest('[hidden]'))
        .map((el) => `${describe(el)}: ${Math.round(el.getBoundingClientRect().height)} px`),
      problems,
    };
    let out = document.getElementById('layout-report');
    if (!out) {
      out = document.createElement('pre');
      out.id = 'layout-report';
      out.hidden = true;
      document.body.append(out);
    }
    out.dataset.ok = String(problems.length === 0 && !pageScrolls);
    out.textContent = JSON.stringify(report);
    console.log('layout-report', out.textContent);
  }

  addEventListener('load', () => setTimeout(check, SETTLE_MS));
})();
