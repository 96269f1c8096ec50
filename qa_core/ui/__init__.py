"""The web app (Gradio; needs the [app] extra): one module per tab, composed in one gr.Blocks by ui/app.py."""

import os

# Gradio reads this when it is first imported, and every module here imports it: start offline, no telemetry.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
