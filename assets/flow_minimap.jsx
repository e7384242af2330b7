// A big graph's minimap: one <canvas> instead of an SVG element (and a store subscription) per node.
import React, { useEffect, useMemo, useRef, useState } from "react";
import { Panel, useReactFlow, useStore, useStoreApi } from "@xyflow/react";
import { boundsOf, cssColor, MINIMAP_IDLE, MINIMAP_STATUS, NODE_WIDTH } from "./flow_node.jsx";

const MAP_W = 200;
const MAP_H = 150;
const nodesAndViewport = (s) => s.transform;

// A number that changes whenever the page switches between light and dark (the colour mode sets a
// class on <html>; the system setting may change too), so a <canvas> can redraw in the new colours.
function useThemeChanges() {
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const bump = () => setTick((t) => t + 1);
    const observer = new MutationObserver(bump);
    observer.observe(document.documentElement, { attributes: true, attributeFilter: ["class", "style"] });
    const media = window.matchMedia("(prefers-color-scheme: dark)");
    media.addEventListener("change", bump);
    return () => { observer.disconnect(); media.removeEventListener("change", bump); };
  }, []);
  return tick;
}

export function CanvasMiniMap({ nodes }) {
  const canvas = useRef(null);
  const transform = useStore(nodesAndViewport);
  const storeApi = useStoreApi();
  const flow = useReactFlow();
  const frame = useRef(null);
  const theme = useThemeChanges();
  // Each colour is resolved once per colour mode: getComputedStyle per node forced a style recalc of
  // the whole page per node (seconds when "fit all" mounts 1000 nodes). Drawn at most once a frame,
  // and not while a node is dragged (a drag changes `nodes` on every pointer move; its end redraws).
  const colors = useMemo(() => new Map(), [theme]); // eslint-disable-line react-hooks/exhaustive-deps
  useEffect(() => {
    const el = canvas.current;
    if (!el || nodes.some((n) => n.dragging)) return undefined;
    const pending = requestAnimationFrame(() => draw(el));
    return () => cancelAnimationFrame(pending);
  }, [nodes, transform, storeApi, theme]); // eslint-disable-line react-hooks/exhaustive-deps
  const draw = (el) => {
    const boxes = nodes.map((n) => ({ x: n.position.x, y: n.position.y, w: n.initialWidth || NODE_WIDTH, h: n.initialHeight || 80 }));
    const bounds = boundsOf(boxes);
    if (!bounds) return;
    const colorOf = (value) => {
      if (colors.has(value)) return colors.get(value);
      const resolved = cssColor(el, value);
      if (resolved !== "#888") colors.set(value, resolved); // "#888": the theme's styles are not in yet
      return resolved;
    };
    const scale = Math.min(MAP_W / bounds.width, MAP_H / bounds.height) * 0.9;
    const ox = (MAP_W - bounds.width * scale) / 2 - bounds.x * scale;
    const oy = (MAP_H - bounds.height * scale) / 2 - bounds.y * scale;
    frame.current = { scale, ox, oy };
    const ctx = el.getContext("2d");
    ctx.clearRect(0, 0, MAP_W, MAP_H);
    nodes.forEach((n, i) => {
      ctx.fillStyle = colorOf(MINIMAP_STATUS[n.data.status] || MINIMAP_IDLE);
      const b = boxes[i];
      ctx.fillRect(ox + b.x * scale, oy + b.y * scale, Math.max(b.w * scale, 1), Math.max(b.h * scale, 1));
    });
    const { width, height } = storeApi.getState();
    const [tx, ty, zoom] = transform;
    ctx.strokeStyle = colorOf("var(--accent-9)");
    ctx.lineWidth = 1.5;
    ctx.strokeRect(ox + (-tx / zoom) * scale, oy + (-ty / zoom) * scale, (width / zoom) * scale, (height / zoom) * scale);
  };
  const centre = (event) => {
    if (!frame.current || !(event.buttons & 1)) return;
    const r = event.currentTarget.getBoundingClientRect();
    const { scale, ox, oy } = frame.current;
    const x = (event.clientX - r.left - ox) / scale;
    const y = (event.clientY - r.top - oy) / scale;
    flow.setCenter(x, y, { zoom: flow.getZoom(), duration: 0 });
  };
  return (
    <Panel position="bottom-right" className="fl-minimap">
      <canvas ref={canvas} width={MAP_W} height={MAP_H} onPointerDown={centre} onPointerMove={centre} />
    </Panel>
  );
}
