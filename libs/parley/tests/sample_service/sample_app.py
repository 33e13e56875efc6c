"""A minimal service on the chassis, for testing `parley dev` (services are discovered)."""

from fastapi import FastAPI
from pydantic_settings import SettingsConfigDict

from servicekit.runtime import create_service_app
from servicekit.settings import ServiceSettings, service_config


class Settings(ServiceSettings):
    model_config: SettingsConfigDict = service_config("SAMPLE_")
    service_name: str = "sample"


def create_app() -> FastAPI:
    return create_service_app(Settings(), title="Sample")
