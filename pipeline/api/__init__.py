"""The DigitalOcean billing API: client, pacing, errors and the shapes it returns."""

from pipeline.api.client import DigitalOceanClient, RetryPolicy
from pipeline.api.errors import (
    ApiError,
    AuthError,
    IncompleteInvoiceError,
    NotFoundError,
    ResponseTooLargeError,
)
from pipeline.api.models import InvoiceFetch, InvoiceListing, InvoiceRef, Page
from pipeline.api.pacing import Pacer

__all__ = [
    "ApiError",
    "AuthError",
    "DigitalOceanClient",
    "IncompleteInvoiceError",
    "InvoiceFetch",
    "InvoiceListing",
    "InvoiceRef",
    "NotFoundError",
    "Pacer",
    "Page",
    "ResponseTooLargeError",
    "RetryPolicy",
]
