"""GraphQL at /graphql (being built)."""

from fastapi import APIRouter

router = APIRouter()

__all__ = ["router"]
