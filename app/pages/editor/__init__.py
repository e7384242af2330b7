"""The workflow editor: its page (page.py) and layout pieces, the working graph, and the states.

The states form one small tree: `EditorCore` holds the open workflow (graph, canvas, selection,
undo stacks); `EditorState` (the page's, with its on_load), `EditorTools` (the toolbar) and
`EditorRun` (runs) are its sub-states, and the page's state reaches the other two explicitly.
Notes and groups (`EditorNotes`), snippets and pasted fragments (`EditorSnippets`) and the
version diff (`EditorDiff`) are sub-states of it too (docs/canvas.md).
"""
