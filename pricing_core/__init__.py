"""pricing_core: exact prepaid billing, metering and analytics for AI applications.

All logic lives here; the Streamlit pages and the HTTP API are thin layers on top.
This package never imports streamlit.
"""

__version__ = "0.1.0"
