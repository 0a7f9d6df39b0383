import pytest
from playwright.sync_api import expect
from tests.browser.support import give_credits, load, sign_in_as, verified_customer
pytestmark = pytest.mark.usefixtures("default_prices")

def test_repro(live_server, page, console_errors):
    user = verified_customer("r@example.com"); give_credits(user, 1000)
    sign_in_as(page, live_server.url, user)
    load(page, f"{live_server.url}/dashboard/playground/", console_errors)
    page.get_by_label("Custom size").fill("1536x1024")
    page.wait_for_timeout(800)
    print("SIZE", page.get_by_label("Size", exact=True).input_value(), "CUSTOM", page.get_by_label("Custom size").input_value())
    for m in ["seedream-4-5", "seedream-5-0-pro", "seedream-3-0", "seedream-4-0", "seededit-3-0", "seedream-5-5"]:
        page.get_by_label("Model").select_option(m)
        page.wait_for_timeout(800)
        print(m, "SIZE", page.get_by_label("Size", exact=True).input_value(), "CUSTOM", page.get_by_label("Custom size").input_value())
    print(console_errors)
