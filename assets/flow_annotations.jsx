// Sticky notes and groups on Flowloom's canvas, and the marks of a version diff.
//
// Python sends them as `annotations` ({notes, groups}); here they become React Flow nodes with
// the ids "note:<id>" and "group:<id>" (a workflow node's id never holds a colon). A note's text is
// Markdown rendered by react-markdown with raw HTML skipped and its default URL filter (no
// javascript: links), so a note cannot inject markup or scripts. Dragging a group moves the nodes
// it holds (see groupDragStart / groupDragMove); every new position goes to Python at drag stop.
import React, { createContext, memo, useContext, useEffect, useState } from "react";
import { NodeResizer, NodeToolbar, Position } from "@xyflow/react";
import Markdown from "react-markdown";
import remarkGfm from "remark-gfm";

export const NOTE_PREFIX = "note:";
export const GROUP_PREFIX = "group:";
export const COLORS = ["yellow", "blue", "green", "pink", "purple", "gray"];
const SCALE = { yellow: "amber", blue: "blue", green: "green", pink: "pink", purple: "violet", gray: "gray" };
const GROUP_Z = -1000; // behind every node, even when selected (React Flow lifts a selected node by 1000)
const MAX_NOTE = 10000;

// What the note and group renderers send Python (through the canvas's event props) and whether
// they may change anything.
export const AnnotateContext = createContext({ send: () => {}, readonly: true });

const TINTS = COLORS.map((c) => `.fl-tint-${c} { --tint-bg: var(--${SCALE[c]}-3); --tint-line: var(--${SCALE[c]}-8);
  --tint-fg: var(--${SCALE[c]}-12); --tint-soft: var(--${SCALE[c]}-a3); --tint-solid: var(--${SCALE[c]}-9); }`).join("\n");

export const ANNOTATION_CSS = `
${TINTS}
.fl-canvas .react-flow__node-flnote, .fl-canvas .react-flow__node-flgroup { padding: 0; border: none; background: transparent; box-shadow: none; }
.fl-note { box-sizing: border-box; width: 100%; height: 100%; background: var(--tint-bg); color: var(--tint-fg);
  border: 1px solid var(--tint-line); border-radius: 6px; box-shadow: 0 2px 6px var(--black-a3); font-size: 12px; line-height: 1.45;
  font-family: Inter, ui-sans-serif, system-ui, sans-serif; overflow: hidden; display: flex; flex-direction: column; }
.fl-note-body { flex: 1; padding: 8px 10px; overflow: auto; overflow-wrap: anywhere; }
.fl-note-body > :first-child { margin-top: 0; } .fl-note-body > :last-child { margin-bottom: 0; }
.fl-note-body h1, .fl-note-body h2, .fl-note-body h3 { font-size: 14px; margin: 4px 0; }
.fl-note-body p, .fl-note-body ul, .fl-note-body ol { margin: 4px 0; } .fl-note-body ul, .fl-note-body ol { padding-left: 18px; }
.fl-note-body code { font-family: ui-monospace, monospace; background: var(--black-a2); padding: 0 3px; border-radius: 3px; }
.fl-note-body a { color: var(--accent-11); }
.fl-note-hint { color: var(--gray-11); font-style: italic; }
.fl-note-edit { flex: 1; box-sizing: border-box; width: 100%; height: 100%; resize: none; border: none; outline: 2px solid var(--accent-8);
  border-radius: 6px; padding: 8px 10px; background: var(--color-panel-solid); color: var(--gray-12); font: 12px/1.45 ui-monospace, monospace; }
/* A group's body lets clicks through (to the nodes, edges and canvas inside it); its title and
   resize handles take them: drag a group by its title. */
.fl-canvas .react-flow__node-flgroup { pointer-events: none !important; }
.fl-canvas .react-flow__node-flgroup .fl-group-title, .fl-canvas .react-flow__node-flgroup .react-flow__resize-control {
  pointer-events: all; }
.fl-group { box-sizing: border-box; width: 100%; height: 100%; border: 2px dashed var(--tint-line); border-radius: 14px;
  background: var(--tint-soft); font-family: Inter, ui-sans-serif, system-ui, sans-serif; }
.react-flow__node.selected .fl-group, .react-flow__node.selected .fl-note { outline: 2px solid var(--accent-8); outline-offset: 2px; }
.fl-group-title { display: inline-block; margin: 8px 10px; padding: 2px 10px; border-radius: 999px; background: var(--tint-solid);
  color: var(--color-panel-solid); font-size: 12px; font-weight: 600; max-width: calc(100% - 20px); white-space: nowrap;
  overflow: hidden; text-overflow: ellipsis; cursor: grab; }
.fl-group-title input { font: inherit; border: none; outline: none; background: transparent; color: inherit; width: 14rem; }
.fl-annot-bar { display: flex; gap: 4px; padding: 4px; background: var(--color-panel-solid); border: 1px solid var(--gray-5);
  border-radius: 8px; box-shadow: 0 1px 3px var(--black-a4); align-items: center; }
.fl-annot-bar button { width: 18px; height: 18px; border-radius: 50%; border: 2px solid var(--color-panel-solid); cursor: pointer;
  box-shadow: 0 0 0 1px var(--gray-7); padding: 0; }
.fl-annot-bar button[aria-pressed="true"] { box-shadow: 0 0 0 2px var(--accent-9); }
.fl-annot-bar button.fl-annot-text { width: auto; height: 20px; border-radius: 5px; padding: 0 6px; font-size: 11px; border: none;
  background: var(--gray-3); color: var(--gray-12); box-shadow: none; }
.fl-node.fl-diff-added { border-color: var(--green-9); box-shadow: 0 0 0 4px var(--green-a7); }
.fl-node.fl-diff-removed { border-color: var(--red-9); border-style: dashed; opacity: .7; box-shadow: 0 0 0 4px var(--red-a6); }
.fl-node.fl-diff-changed { border-color: var(--amber-9); box-shadow: 0 0 0 4px var(--amber-a7); }
.fl-node.fl-diff-moved { border-color: var(--blue-8); border-style: dotted; }
.fl-note.fl-diff-added, .fl-group.fl-diff-added { box-shadow: 0 0 0 4px var(--green-a7); }
.fl-note.fl-diff-removed, .fl-group.fl-diff-removed { opacity: .6; box-shadow: 0 0 0 4px var(--red-a6); }
.fl-note.fl-diff-changed, .fl-group.fl-diff-changed { box-shadow: 0 0 0 4px var(--amber-a7); }
.fl-note.fl-diff-moved, .fl-group.fl-diff-moved { box-shadow: 0 0 0 3px var(--blue-a6); }
.fl-canvas .react-flow__edge.fl-diff-added .react-flow__edge-path { stroke: var(--green-9); stroke-width: 3; }
.fl-canvas .react-flow__edge.fl-diff-removed .react-flow__edge-path { stroke: var(--red-9); stroke-width: 3; stroke-dasharray: 6 4; }
.fl-canvas .react-flow__edge.fl-diff-changed .react-flow__edge-path { stroke: var(--amber-9); stroke-width: 3; }
.fl-diff-tag { position: absolute; bottom: -9px; left: 10px; z-index: 1; font-size: 10px; font-weight: 600; line-height: 14px; padding: 1px 8px;
  border-radius: 999px; text-transform: capitalize; border: 1px solid var(--color-panel-solid); }
.fl-diff-tag.added { background: var(--green-9); color: var(--green-contrast, white); }
.fl-diff-tag.removed { background: var(--red-9); color: var(--red-contrast, white); }
.fl-diff-tag.changed { background: var(--amber-9); color: var(--amber-contrast, black); }
.fl-diff-tag.moved { background: var(--blue-9); color: var(--blue-contrast, white); }
`;

export const isAnnotation = (id) => id.startsWith(NOTE_PREFIX) || id.startsWith(GROUP_PREFIX);

function ColorBar({ id, color, extra }) {
  const { send } = useContext(AnnotateContext);
  return (
    <NodeToolbar isVisible position={Position.Top} align="start">
      <div className="fl-annot-bar" data-testid="annotation-toolbar">
        {COLORS.map((c) => (
          <button
            key={c}
            type="button"
            className={`fl-tint-${c}`}
            style={{ background: "var(--tint-solid)" }}
            aria-label={`Colour ${c}`}
            aria-pressed={c === color}
            title={c}
            data-color={c}
            onClick={() => send("onAnnotate", "update", id, { color: c })}
          />
        ))}
        {extra}
      </div>
    </NodeToolbar>
  );
}

function resizeEnd(send, id) {
  return (_event, p) => send("onAnnotate", "update", id, {
    x: Math.round(p.x), y: Math.round(p.y), width: Math.round(p.width), height: Math.round(p.height),
  });
}

const NoteNode = memo(function NoteNode({ id, data, selected }) {
  const { send, readonly } = useContext(AnnotateContext);
  const [editing, setEditing] = useState(false);
  const [draft, setDraft] = useState(data.text);
  useEffect(() => { if (!editing) setDraft(data.text); }, [data.text, editing]);
  const finish = (save) => {
    setEditing(false);
    if (save && draft !== data.text) send("onAnnotate", "update", id, { text: draft });
    else setDraft(data.text);
  };
  return (
    <div
      className={`fl-note fl-tint-${data.color}${data.d ? ` fl-diff-${data.d}` : ""}`}
      data-testid="canvas-note"
      data-note-id={id}
      data-color={data.color}
      data-diff={data.d || undefined}
      onDoubleClick={() => { if (!readonly) setEditing(true); }}
    >
      {readonly ? null : <NodeResizer isVisible={selected && !editing} minWidth={80} minHeight={60} onResizeEnd={resizeEnd(send, id)} />}
      {selected && !readonly && !editing ? <ColorBar id={id} color={data.color} /> : null}
      {editing ? (
        <textarea
          className="fl-note-edit nodrag nowheel nopan"
          autoFocus
          value={draft}
          maxLength={MAX_NOTE}
          aria-label="Note text (Markdown)"
          data-testid="note-editor"
          onChange={(e) => setDraft(e.target.value)}
          onBlur={() => finish(true)}
          onKeyDown={(e) => {
            e.stopPropagation();
            if (e.key === "Escape") finish(false);
            else if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) finish(true);
          }}
        />
      ) : (
        <div className="fl-note-body nowheel" data-testid="note-body">
          {data.text ? (
            <Markdown skipHtml remarkPlugins={[remarkGfm]} components={{ a: SafeLink, img: NoImage }}>{data.text}</Markdown>
          ) : (
            <span className="fl-note-hint">{readonly ? "" : "Double-click to write (Markdown)"}</span>
          )}
        </div>
      )}
    </div>
  );
});

// Links open elsewhere without handing over this page; images are not fetched (a note could
// otherwise make every viewer's browser call an address of the author's choosing).
function SafeLink({ href, children }) {
  return <a href={href} target="_blank" rel="noopener noreferrer nofollow">{children}</a>;
}
function NoImage({ alt }) {
  return <span>[image{alt ? `: ${alt}` : ""}]</span>;
}

const GroupNode = memo(function GroupNode({ id, data, selected }) {
  const { send, readonly } = useContext(AnnotateContext);
  const [editing, setEditing] = useState(false);
  const [draft, setDraft] = useState(data.title);
  useEffect(() => { if (!editing) setDraft(data.title); }, [data.title, editing]);
  const finish = (save) => {
    setEditing(false);
    if (save && draft.trim() !== data.title) send("onAnnotate", "update", id, { title: draft.trim() });
    else setDraft(data.title);
  };
  const ungroup = (
    <button type="button" className="fl-annot-text" data-testid="ungroup" onClick={() => send("onAnnotate", "ungroup", id, {})}>
      Ungroup
    </button>
  );
  return (
    <div
      className={`fl-group fl-tint-${data.color}${data.d ? ` fl-diff-${data.d}` : ""}`}
      data-testid="canvas-group"
      data-group-id={id}
      data-color={data.color}
      data-diff={data.d || undefined}
      data-members={data.nodes.join(",")}
    >
      {readonly ? null : <NodeResizer isVisible={selected} minWidth={80} minHeight={60} onResizeEnd={resizeEnd(send, id)} />}
      {selected && !readonly ? <ColorBar id={id} color={data.color} extra={ungroup} /> : null}
      <div
        className="fl-group-title"
        data-testid="group-title"
        title={readonly ? data.title : "Double-click to rename"}
        onDoubleClick={() => { if (!readonly) setEditing(true); }}
      >
        {editing ? (
          <input
            className="nodrag"
            autoFocus
            value={draft}
            maxLength={200}
            aria-label="Group title"
            data-testid="group-title-input"
            onChange={(e) => setDraft(e.target.value)}
            onBlur={() => finish(true)}
            onKeyDown={(e) => {
              e.stopPropagation();
              if (e.key === "Enter") finish(true);
              else if (e.key === "Escape") finish(false);
            }}
          />
        ) : (data.title || "Group")}
      </div>
    </div>
  );
});

export const ANNOTATION_TYPES = { flnote: NoteNode, flgroup: GroupNode };

function annotationNode(item, type, prev, positionsFromServer) {
  const keep = prev && (prev.dragging || prev.resizing || !positionsFromServer);
  const position = keep ? prev.position : { x: item.x, y: item.y };
  const width = keep && prev.width ? prev.width : item.w;
  const height = keep && prev.height ? prev.height : item.h;
  const data = type === "flnote"
    ? { text: item.text, color: item.color, d: item.d }
    : { title: item.title, color: item.color, nodes: item.nodes || [], d: item.d };
  const key = JSON.stringify(data);
  if (prev && prev.data._key === key && prev.position.x === position.x && prev.position.y === position.y &&
      prev.width === width && prev.height === height) {
    return prev;
  }
  return {
    ...(prev || {}),
    id: item.id,
    type,
    position,
    width,
    height,
    zIndex: type === "flgroup" ? GROUP_Z : 0,
    data: { ...data, _key: key },
  };
}

// React Flow nodes for the notes and groups (groups first, so they are drawn below everything).
export function mergeAnnotations(annotations, previous, positionsFromServer) {
  const prevById = new Map(previous.map((p) => [p.id, p]));
  const out = [];
  for (const g of annotations.groups || []) out.push(annotationNode(g, "flgroup", prevById.get(g.id), positionsFromServer));
  for (const n of annotations.notes || []) out.push(annotationNode(n, "flnote", prevById.get(n.id), positionsFromServer));
  return out;
}

// The boxes of the notes and groups, for fitting the view around everything.
export function annotationBoxes(annotations) {
  return [...(annotations.groups || []), ...(annotations.notes || [])].map((a) => ({ x: a.x, y: a.y, w: a.w, h: a.h }));
}

// A drag that includes groups: where each group and each node it holds (and that is not dragged
// itself) started. null when no group is dragged, so an ordinary drag costs nothing more.
export function groupDragStart(dragged, allNodes) {
  const groups = dragged.filter((n) => n.id.startsWith(GROUP_PREFIX));
  if (!groups.length) return null;
  const draggedIds = new Set(dragged.map((n) => n.id));
  const byId = new Map(allNodes.map((n) => [n.id, n]));
  const plan = [];
  for (const g of groups) {
    const members = [];
    for (const id of (g.data && g.data.nodes) || []) {
      const n = byId.get(id);
      if (n && !draggedIds.has(id)) members.push({ id, x: n.position.x, y: n.position.y });
    }
    plan.push({ id: g.id, x: g.position.x, y: g.position.y, members });
  }
  return { plan, last: new Map() };
}

// The members' positions for the groups' current places (also remembered for the drag stop).
export function groupDragMove(drag, dragged) {
  const now = new Map(dragged.map((n) => [n.id, n.position]));
  const moved = new Map();
  for (const g of drag.plan) {
    const at = now.get(g.id);
    if (!at) continue;
    const dx = at.x - g.x;
    const dy = at.y - g.y;
    for (const m of g.members) moved.set(m.id, { x: m.x + dx, y: m.y + dy });
  }
  drag.last = moved;
  return moved;
}
