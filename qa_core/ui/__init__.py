"""The web app's tabs, one module each (Gradio; needs the [app] extra); app.py composes them in one gr.Blocks."""
