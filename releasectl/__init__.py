"""releasectl: carry a post-trained LLM release from pull request to production and back."""

__version__ = "0.1.0"
