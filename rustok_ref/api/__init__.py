"""The service API: FastAPI REST and Strawberry GraphQL over the domain services."""

from rustok_ref.api.app import create_app

__all__ = ["create_app"]
