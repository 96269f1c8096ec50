"""Entry point of the web app (and the Hugging Face Space's app_file): `python app.py`; see qa_core/ui/app.py."""

from qa_core.ui.app import main

if __name__ == "__main__":
    main()
