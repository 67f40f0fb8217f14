"""The cost dashboard (`make dashboard`): a Streamlit app over the published warehouse's views."""
