"""The cancellation journey: request, retention, notice and penalty, FNO deactivation, equipment, final account, close."""
