"""Product orders (TMF622) and quotes (TMF648): validation, orchestration of inventory, equipment and partner service
orders, the reaction to the partner's answers (completing, relocating or terminating products on confirmed dates),
early-termination fees, and the read side. `from opsline.orders import service` gives every public function."""

from opsline.orders.models import OPEN_ITEM_STATES, OPEN_ORDER_STATES
from opsline.orders.service.actions import USER_ACTIONS, allowed_actions, cancel_order, get_order, order_action
from opsline.orders.service.common import local_date
from opsline.orders.service.entry import change_order, change_quote, submit_order, submit_quote
from opsline.orders.service.errors import (
    DuplicateOrderReference,
    OrderCancellationNotAllowed,
    OrderNotAllowed,
    OrderNotFound,
    OrderTransitionNotAllowed,
    QuoteExpired,
    QuoteNotEditable,
    QuoteNotFound,
    QuoteTransitionNotAllowed,
    UnableToChangeQuote,
    UnableToPlaceOrder,
    WaiverReasonRequired,
)
from opsline.orders.service.partner_updates import handle_service_order_event, on_partner_order_update
from opsline.orders.service.placing import place_order, start_held_termination
from opsline.orders.service.queries import home_summary, items_of, list_orders, order_counts, order_detail, order_dict, order_form, order_record, order_list, orders_desk
from opsline.orders.service.quotes import create_quote, get_quote, list_quotes, quote_action, quote_detail, quote_list, update_quote
from opsline.orders.service.termination import early_termination_quote, is_juristic, termination_fees

__all__ = [
    "OPEN_ITEM_STATES", "OPEN_ORDER_STATES", "USER_ACTIONS", "DuplicateOrderReference", "OrderCancellationNotAllowed", "OrderNotAllowed",
    "OrderNotFound", "OrderTransitionNotAllowed", "QuoteExpired", "QuoteNotEditable", "QuoteNotFound", "QuoteTransitionNotAllowed", "UnableToChangeQuote", "UnableToPlaceOrder",
    "WaiverReasonRequired", "allowed_actions", "cancel_order", "change_order", "change_quote", "create_quote", "early_termination_quote",
    "get_order", "get_quote", "handle_service_order_event", "home_summary", "is_juristic", "items_of", "list_orders", "list_quotes",
    "local_date", "on_partner_order_update", "order_action", "order_counts", "order_detail", "order_dict", "order_form", "order_record", "order_list", "orders_desk",
    "place_order", "quote_action", "start_held_termination", "quote_detail", "quote_list", "submit_order", "submit_quote", "termination_fees", "update_quote",
]
