// A very small bar-chart drawer for the status page: inline SVG, no library. Each bar is a
// <rect class="bar"> with a <title> (hover or screen-reader text); the SVG scales to its box
// through its viewBox, so one drawing fits a phone and a desktop.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";

function svgEl(name, attrs, text) {
  const el = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

/**
 * Draws `bars` into `svg`: [{value, label, title, bad}] where `value` ≥ 0. Options: `max`
 * (the top of the scale; default the largest value), `overlay` (a second series drawn over
 * the first, same shape, drawn with the "bad" colour: errors over requests), `labelEvery`
 * (write every n-th label under the axis), `format` (the top tick's text).
 */
function drawBars(svg, bars, options) {
  const opts = options || {};
  const width = 360;
  const height = 170;
  const left = 38;
  const bottom = 22;
  const top = 8;
  const plotW = width - left - 4;
  const plotH = height - top - bottom;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.replaceChildren();
  const max = opts.max || Math.max(1, ...bars.map((b) => b.value));
  const format = opts.format || ((v) => String(Math.round(v)));
  svg.append(
    svgEl("line", { class: "axis", x1: left, y1: top + plotH, x2: width - 4, y2: top + plotH }),
    svgEl("line", { class: "axis", x1: left, y1: top, x2: left, y2: top + plotH }),
    svgEl("text", { x: left - 4, y: top + 10, "text-anchor": "end" }, format(max)),
    svgEl("text", { x: left - 4, y: top + plotH, "text-anchor": "end" }, "0"),
  );
  if (bars.length === 0) {
    svg.append(svgEl("text", { x: left + plotW / 2, y: top + plotH / 2, "text-anchor": "middle" }, "no data yet"));
    return;
  }
  const slot = plotW / bars.length;
  // A few bars stay slim (centred in their slot); many get a hairline gap, then none.
  const gap = slot > 6 ? Math.max(Math.min(4, slot * 0.2), slot - 40) : 0;
  const every = opts.labelEvery || 1;
  const scale = (v) => (Math.min(v, max) / max) * plotH;
  bars.forEach((b, i) => {
    const x = left + i * slot + gap / 2;
    const h = scale(b.value);
    const rect = svgEl("rect", {
      class: b.bad ? "bar bad" : "bar",
      x: x.toFixed(2),
      y: (top + plotH - h).toFixed(2),
      width: Math.max(0.5, slot - gap).toFixed(2),
      height: h.toFixed(2),
    });
    rect.append(svgEl("title", {}, b.title || `${b.label}: ${b.value}`));
    svg.append(rect);
    if (opts.overlay && opts.overlay[i] > 0) {
      const oh = scale(opts.overlay[i]);
      const over = svgEl("rect", {
        class: "bar bad",
        x: x.toFixed(2),
        y: (top + plotH - oh).toFixed(2),
        width: Math.max(0.5, slot - gap).toFixed(2),
        height: oh.toFixed(2),
      });
      over.append(svgEl("title", {}, `${b.label}: ${opts.overlay[i]} errors`));
      svg.append(over);
    }
    if (b.label && i % every === 0) {
      // Centred under its bar, but kept inside the drawing at both ends.
      const centre = x + (slot - gap) / 2;
      const anchor = centre > width - 24 ? "end" : centre < left + 12 ? "start" : "middle";
      const at = anchor === "end" ? width - 2 : anchor === "start" ? left : centre;
      svg.append(svgEl("text", { x: at.toFixed(2), y: height - 6, "text-anchor": anchor }, b.label));
    }
  });
}

window.sn1Charts = { drawBars };
