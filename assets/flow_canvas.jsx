// Flowloom's workflow canvas: React Flow (@xyflow/react 12) with Flowloom's node renderer.
//
// Python owns the graph (nodes, edges, their configs); this component owns what only the
// browser needs: drag positions while dragging, selection, viewport, measured sizes.
// It sends coarse events to Python (drop, drag stop, connect, select, delete, shortcut)
// and never forwards DOM events.
import React, { useCallback, useEffect, useRef, useState } from "react";
import {
  Background,
  Controls,
  getViewportForBounds,
  MiniMap,
  ReactFlow,
  ReactFlowProvider,
  useEdgesState,
  useNodesState,
  useReactFlow,
  useStoreApi,
} from "@xyflow/react";
import "@xyflow/react/dist/style.css";

import { CanvasMiniMap } from "./flow_minimap.jsx";
import {
  boundsOf, CanvasContext, CSS, ERROR_PORT, MINIMAP_IDLE, MINIMAP_STATUS, NODE_TYPES, NODE_WIDTH, nodeHandles,
} from "./flow_node.jsx";

const DRAG_MIME = "application/reactflow";
// The palette's keyboard path (Enter on an item) asks for a node with this DOM event; see addNodeEvent.
export const ADD_NODE_EVENT = "flowloom:add-node";
const ADD_STEP = 64; // a node added from the keyboard goes below any node already at the spot
const KEY_MOVE_REST_MS = 400; // arrow-key moves are sent once the keys rest this long
const BIG_GRAPH = 200; // from this many nodes on, only visible elements are rendered
const MIN_ZOOM = 0.05;
const FIT_PADDING = 0.12;
const BIG_GRAPH_MIN_ZOOM = 0.4; // a big graph opens readable, centred, rather than as specks

// The key of what the server says about a node; an unchanged key keeps the client's object.
function serverKey(n) {
  return `${n.t}|${n.label}|${n.outs ? JSON.stringify(n.outs) : ""}`;
}

function mergeNodes(server, previous, statuses, issues, positionsFromServer, types) {
  const prevById = new Map(previous.map((p) => [p.id, p]));
  return server.map((n) => {
    const prev = prevById.get(n.id);
    const status = statuses[n.id] || "";
    const issue = issues[n.id];
    const key = serverKey(n);
    const keepPosition = prev && (prev.dragging || !positionsFromServer);
    const position = keepPosition ? prev.position : { x: n.x, y: n.y };
    if (
      prev && prev.data._key === key && prev.data.status === status && prev.data.issue === issue &&
      prev.position.x === position.x && prev.position.y === position.y
    ) {
      return prev;
    }
    const shape = prev && prev.data._key === key ? prev : { ...nodeHandles(n, types), initialWidth: NODE_WIDTH };
    return {
      ...(prev || {}),
      id: n.id,
      type: "fl",
      handles: shape.handles,
      initialWidth: NODE_WIDTH,
      initialHeight: shape.initialHeight || shape.height,
      position,
      data: { id: n.id, t: n.t, label: n.label, outs: n.outs, status, issue, _key: key },
    };
  });
}

function edgeClass(e, statuses) {
  if (e.sourceHandle === ERROR_PORT) return "fl-edge-error";
  const from = statuses[e.source];
  const to = statuses[e.target];
  if (from === "succeeded" && to) return to === "running" ? "fl-edge-live" : "fl-edge-done";
  return "";
}

function mergeEdges(server, previous, statuses) {
  const prevById = new Map(previous.map((p) => [p.id, p]));
  return server.map((e) => {
    const prev = prevById.get(e.id);
    const className = edgeClass(e, statuses);
    if (
      prev && prev.source === e.source && prev.target === e.target && prev.sourceHandle === e.sourceHandle &&
      prev.targetHandle === e.targetHandle && prev.className === className && prev.label === (e.label || undefined)
    ) {
      return prev;
    }
    return {
      ...(prev || {}),
      id: e.id,
      source: e.source,
      target: e.target,
      sourceHandle: e.sourceHandle,
      targetHandle: e.targetHandle,
      label: e.label || undefined,
      className,
      animated: className === "fl-edge-live",
    };
  });
}

function typingInField(event) {
  const el = event.target;
  if (!el || !el.closest) return false;
  return Boolean(el.closest("input, textarea, select, [contenteditable=true], [role=dialog], [role=menu]"));
}

const DELETE_KEYS = ["Delete", "Backspace"];
const SNAP_GRID = [8, 8];
const SHORTCUTS = { z: "undo", y: "redo", c: "copy", v: "paste", d: "duplicate", s: "save" };

const EMPTY = {};
const EMPTY_LIST = [];

function Canvas(props) {
  const { active = true, readonly = false, statuses = EMPTY, issues = EMPTY, fit = null, focus = null, id } = props;
  // Until Python says the graph is this page's (`active`), draw none of what the tab last showed.
  const serverNodes = (active && props.nodes) || EMPTY_LIST;
  const serverEdges = (active && props.edges) || EMPTY_LIST;
  // The catalogue is a compile-time constant, but Reflex rebuilds its literal on every render.
  const [catalogue] = useState(() => ({ types: props.types || {}, icons: props.icons || {} }));
  const { types } = catalogue;
  // Event props are new functions on every render; read the latest through a ref.
  const handlers = useRef(props);
  handlers.current = props;
  const send = useCallback((name, ...args) => {
    const fn = handlers.current[name];
    if (fn) fn(...args);
  }, []);

  const [nodes, setNodes, onNodesChange] = useNodesState([]);
  const [edges, setEdges, onEdgesChange] = useEdgesState([]);
  const flow = useReactFlow();
  const storeApi = useStoreApi();
  const wrapper = useRef(null);
  const lastServerNodes = useRef(null);
  const lastSelection = useRef("|");

  // Python asks for a fit (load, import, layout, the Fit button) by bumping fit.n. The view is set
  // before the nodes are handed to React Flow, from positions and the fixed node geometry, so a
  // big graph is drawn once, at its final zoom, and only the part in view.
  const fitToken = fit ? fit.n : 0;
  const lastFit = useRef(0);
  useEffect(() => {
    const positionsFromServer = lastServerNodes.current !== serverNodes;
    lastServerNodes.current = serverNodes;
    if (fitToken !== lastFit.current) {
      lastFit.current = fitToken;
      const boxes = positionsFromServer
        ? serverNodes.map((n) => ({ x: n.x, y: n.y, w: NODE_WIDTH, h: nodeHandles(n, types).height }))
        : storeApi.getState().nodes.map((n) => ({
            x: n.position.x, y: n.position.y,
            w: n.measured?.width ?? n.initialWidth ?? NODE_WIDTH, h: n.measured?.height ?? n.initialHeight ?? 80,
          }));
      const bounds = boundsOf(boxes);
      if (bounds && wrapper.current) {
        const { width, height } = wrapper.current.getBoundingClientRect();
        const minZoom = boxes.length >= BIG_GRAPH && !(fit && fit.all) ? BIG_GRAPH_MIN_ZOOM : MIN_ZOOM;
        flow.setViewport(getViewportForBounds(bounds, width, height, minZoom, 1, FIT_PADDING), { duration: 0 });
      }
    }
    setNodes((prev) => mergeNodes(serverNodes, prev, statuses, issues, positionsFromServer, types));
  }, [serverNodes, statuses, issues, types, fitToken, setNodes]); // eslint-disable-line react-hooks/exhaustive-deps

  useEffect(() => {
    setEdges((prev) => mergeEdges(serverEdges, prev, statuses));
  }, [serverEdges, statuses, setEdges]);

  // Python asks to select nodes (a drop, a paste) and maybe centre one (an issue or a step was clicked).
  useEffect(() => {
    if (!focus || !focus.ids || !focus.ids.length) return;
    const ids = new Set(focus.ids);
    setNodes((prev) => prev.map((n) => (Boolean(n.selected) === ids.has(n.id) ? n : { ...n, selected: ids.has(n.id) })));
    if (!focus.center) return;
    const node = flow.getInternalNode(focus.ids[0]);
    if (node) {
      const w = node.measured?.width || NODE_WIDTH;
      const h = node.measured?.height || 80;
      const pos = node.internals.positionAbsolute;
      flow.setCenter(pos.x + w / 2, pos.y + h / 2, { zoom: Math.max(flow.getZoom(), 0.9), duration: 250 });
    }
  }, [focus && focus.n]); // eslint-disable-line react-hooks/exhaustive-deps

  useEffect(() => {
    const onKey = (event) => {
      if (readonly || !(event.ctrlKey || event.metaKey) || event.altKey || typingInField(event)) return;
      const key = event.key.toLowerCase();
      let action = SHORTCUTS[key];
      if (!action) return;
      if (key === "z" && event.shiftKey) action = "redo";
      if (action === "copy" && String(window.getSelection() || "").length > 0) return;
      event.preventDefault();
      send("onShortcut", action);
    };
    document.addEventListener("keydown", onKey);
    return () => document.removeEventListener("keydown", onKey);
  }, [send, readonly]);

  // A palette item chosen from the keyboard: the node goes to the middle of the view (below the
  // nodes already there), through the same onDrop event as a drag.
  useEffect(() => {
    const onAdd = (event) => {
      const kind = event.detail && event.detail.kind;
      if (readonly || !kind || !wrapper.current) return;
      const r = wrapper.current.getBoundingClientRect();
      const at = flow.screenToFlowPosition({ x: r.left + r.width / 2, y: r.top + r.height / 2 });
      let x = Math.round(at.x - NODE_WIDTH / 2);
      let y = Math.round(at.y - 22);
      const taken = storeApi.getState().nodes;
      for (let i = 0; i < 50 && taken.some((n) => Math.abs(n.position.x - x) < NODE_WIDTH / 2 && Math.abs(n.position.y - y) < ADD_STEP / 2); i++) {
        y += ADD_STEP;
      }
      send("onDrop", kind, x, y);
    };
    window.addEventListener(ADD_NODE_EVENT, onAdd);
    return () => window.removeEventListener(ADD_NODE_EVENT, onAdd);
  }, [flow, send, storeApi, readonly]);

  const handleDragOver = useCallback((event) => {
    event.preventDefault();
    event.dataTransfer.dropEffect = "move";
  }, []);

  const handleDrop = useCallback(
    (event) => {
      event.preventDefault();
      const kind = event.dataTransfer.getData(DRAG_MIME);
      if (!kind) return;
      const at = flow.screenToFlowPosition({ x: event.clientX, y: event.clientY });
      send("onDrop", kind, Math.round(at.x - NODE_WIDTH / 2), Math.round(at.y - 22));
    },
    [flow, send],
  );

  const handleDragStop = useCallback(
    (_event, _node, moved) => {
      if (!moved || !moved.length) return;
      send("onMove", moved.map((n) => ({ id: n.id, x: Math.round(n.position.x), y: Math.round(n.position.y) })));
    },
    [send],
  );
  const handleSelectionDragStop = useCallback((event, moved) => handleDragStop(event, null, moved), [handleDragStop]);

  // Arrow keys move the selected nodes (React Flow's keyboard access): no drag starts or stops, so
  // the moves are gathered here and sent like a drag stop once the keys rest.
  const dragging = useRef(false);
  const keyMoves = useRef(new Map());
  const keyTimer = useRef(null);
  const handleNodesChange = useCallback(
    (changes) => {
      onNodesChange(changes);
      if (readonly || dragging.current) return;
      let moved = false;
      for (const c of changes) {
        if (c.type === "position" && c.position && !c.dragging) {
          keyMoves.current.set(c.id, { id: c.id, x: Math.round(c.position.x), y: Math.round(c.position.y) });
          moved = true;
        }
      }
      if (!moved) return;
      clearTimeout(keyTimer.current);
      keyTimer.current = setTimeout(() => {
        const batch = Array.from(keyMoves.current.values());
        keyMoves.current.clear();
        if (batch.length) send("onMove", batch);
      }, KEY_MOVE_REST_MS);
    },
    [onNodesChange, readonly, send],
  );
  const handleDragStart = useCallback(() => { dragging.current = true; }, []);
  const handleDragEnd = useCallback(
    (event, node, moved) => { dragging.current = false; handleDragStop(event, node, moved); },
    [handleDragStop],
  );
  const handleSelectionDragEnd = useCallback((event, moved) => handleDragEnd(event, null, moved), [handleDragEnd]);
  useEffect(() => () => clearTimeout(keyTimer.current), []);

  const handleConnect = useCallback(
    (c) => send("onConnect", c.source, c.sourceHandle || "", c.target, c.targetHandle || ""),
    [send],
  );

  const handleSelection = useCallback(
    ({ nodes: selNodes, edges: selEdges }) => {
      const nodeIds = selNodes.map((n) => n.id).sort();
      const edgeIds = selEdges.map((e) => e.id).sort();
      const key = `${nodeIds.join(",")}|${edgeIds.join(",")}`;
      if (key === lastSelection.current) return;
      lastSelection.current = key;
      send("onSelect", nodeIds, edgeIds);
    },
    [send],
  );

  const handleDelete = useCallback(
    ({ nodes: gone, edges: goneEdges }) => send("onDelete", gone.map((n) => n.id), goneEdges.map((e) => e.id)),
    [send],
  );

  const minimapColor = useCallback((n) => MINIMAP_STATUS[n.data.status] || MINIMAP_IDLE, []);
  const big = nodes.length >= BIG_GRAPH;

  return (
    <CanvasContext.Provider value={catalogue}>
      <div className="fl-canvas" id={id} ref={wrapper} data-node-count={nodes.length}>
        <style>{CSS}</style>
        <ReactFlow
          nodes={nodes}
          edges={edges}
          nodeTypes={NODE_TYPES}
          onNodesChange={handleNodesChange}
          onNodeDragStart={handleDragStart}
          onSelectionDragStart={handleDragStart}
          onEdgesChange={onEdgesChange}
          onNodeDragStop={handleDragEnd}
          onSelectionDragStop={handleSelectionDragEnd}
          onConnect={handleConnect}
          onSelectionChange={handleSelection}
          onDelete={handleDelete}
          onDrop={readonly ? undefined : handleDrop}
          onDragOver={readonly ? undefined : handleDragOver}
          deleteKeyCode={readonly ? null : DELETE_KEYS}
          nodesDraggable={!readonly}
          nodesConnectable={!readonly}
          edgesReconnectable={!readonly}
          onlyRenderVisibleElements={big}
          minZoom={MIN_ZOOM}
          maxZoom={2}
          snapToGrid
          snapGrid={SNAP_GRID}
        >
          <Background gap={16} size={1.2} color="var(--gray-6)" />
          <Controls showInteractive={false} showFitView={false} />
          {big ? (
            <CanvasMiniMap nodes={nodes} />
          ) : (
            <MiniMap pannable zoomable nodeColor={minimapColor} nodeStrokeWidth={0} maskColor="var(--gray-a4)" />
          )}
        </ReactFlow>
        {serverNodes.length === 0 && !readonly ? (
          <div className="fl-empty"><div>Drag a node from the palette to start</div></div>
        ) : null}
      </div>
    </CanvasContext.Provider>
  );
}

export function FlowCanvas(props) {
  return (
    <ReactFlowProvider>
      <Canvas {...props} />
    </ReactFlowProvider>
  );
}
