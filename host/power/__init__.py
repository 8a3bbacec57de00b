"""Measured energy per token: power meters, their simulated instruments, and the measurement
(docs/energy.md). ``run_power`` is what the ``mmfree power`` subcommand calls."""

from .ina import INA219, INA226, I2CDevFile
from .measure import EnergyReport, RailReport, integrate, measure_energy, run_power, write_csv, write_plot
from .meter import RAILS, MeterError, PowerMeter, Reading, Sample
from .um import UMMeter, parse_um

__all__ = ["INA219", "INA226", "I2CDevFile", "UMMeter", "parse_um", "PowerMeter", "MeterError",
           "Reading", "Sample", "RAILS", "measure_energy", "integrate", "EnergyReport", "RailReport",
           "write_csv", "write_plot", "run_power"]
